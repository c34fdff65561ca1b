//! From recordings to the windows a model trains on, and what is done to those windows.
//!
//! - [`windows`]: fixed-length windows every `stride` steps over streams (HAPT, EDF), each with
//!   one label: either only windows whose samples all carry one label ([`WindowSpec::single_label`],
//!   the usual HAR protocol), or the most frequent label; unlabelled windows are dropped, and so
//!   are windows whose label is not one of the requested classes (how HAPT's postural transitions
//!   are left out);
//! - [`fixed_length`]: one window per `.ts` case, zero-padded at the end or truncated to a given
//!   length (JapaneseVowels' cases are 7 to 29 steps long);
//! - [`Normalizer`]: per-channel mean and standard deviation, fitted on the training split only and
//!   applied to every split;
//! - [`split_by_subjects`]: a subject-wise train/test split, so no person is in both;
//! - [`select_channels`] (sets) and [`select_recording_channels`] (recordings): a channel subset by
//!   name or index, such as the accelerometer-only student input.

use std::collections::{BTreeSet, HashMap};

use super::{Recording, RecordingLabels, SeriesError, SeriesSet};

/// A channel asked for by name or by position (in a config: `"acc_x"` or `0`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ChannelRef {
    /// The channel's name.
    Name(String),
    /// The channel's index.
    Index(usize),
}

impl From<&str> for ChannelRef {
    fn from(s: &str) -> Self {
        ChannelRef::Name(s.to_string())
    }
}

impl From<String> for ChannelRef {
    fn from(s: String) -> Self {
        ChannelRef::Name(s)
    }
}

impl From<usize> for ChannelRef {
    fn from(i: usize) -> Self {
        ChannelRef::Index(i)
    }
}

/// The indices of `refs` in `names`; `source` names where the channels were looked up.
///
/// # Errors
/// [`SeriesError::ChannelUnknown`] listing every unknown name or index and the available channels.
pub fn resolve_channels(
    names: &[String],
    refs: &[ChannelRef],
    source: &str,
) -> Result<Vec<usize>, SeriesError> {
    let mut out = Vec::with_capacity(refs.len());
    let mut unknown = Vec::new();
    for r in refs {
        match r {
            ChannelRef::Name(n) => match names.iter().position(|c| c == n) {
                Some(i) => out.push(i),
                None => unknown.push(format!("{n:?}")),
            },
            ChannelRef::Index(i) if *i < names.len() => out.push(*i),
            ChannelRef::Index(i) => unknown.push(i.to_string()),
        }
    }
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(SeriesError::ChannelUnknown {
            source_name: source.to_string(),
            unknown: unknown.join(", "),
            available: names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{i}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// How to cut streams into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Window length in samples (HAPT: 128, 2.56 s at 50 Hz).
    pub len: usize,
    /// Steps between window starts (HAPT: 64, 50 % overlap).
    pub stride: usize,
    /// Keep only windows whose samples all have one label (and none is unlabelled); otherwise a
    /// window takes the most frequent label among its labelled samples (ties: the first to reach
    /// the count), and is dropped only if no sample is labelled.
    pub single_label: bool,
}

/// Cuts every recording into windows (see [`WindowSpec`]); windows never cross recordings.
///
/// With `class_names`, labels are indices into it and windows of any other label are dropped;
/// without, the classes are the kept windows' labels, sorted.
///
/// # Errors
/// [`SeriesError::BadArgument`] for a zero length or stride or more than 256 classes;
/// [`SeriesError::Mismatch`] if the recordings do not have the same channels.
pub fn windows(
    recordings: &[Recording],
    spec: &WindowSpec,
    class_names: Option<&[String]>,
) -> Result<SeriesSet, SeriesError> {
    if spec.len == 0 || spec.stride == 0 {
        return Err(SeriesError::BadArgument(format!(
            "window length {} and stride {} must be positive",
            spec.len, spec.stride
        )));
    }
    let channels = same_channels(recordings)?;
    let c_n = channels.len();
    // (recording, start, label) of each kept window.
    let mut kept: Vec<(usize, usize, String)> = Vec::new();
    for (r, rec) in recordings.iter().enumerate() {
        let steps = rec.steps();
        let mut start = 0;
        while start + spec.len <= steps {
            if let Some(l) = window_label(rec, start, spec) {
                if class_names.is_none_or(|names| names.iter().any(|n| n == l)) {
                    kept.push((r, start, l.to_string()));
                }
            }
            start += spec.stride;
        }
    }
    let class_names: Vec<String> = match class_names {
        Some(n) => n.to_vec(),
        None => kept
            .iter()
            .map(|k| k.2.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let index = class_index(&class_names)?;
    let mut set = SeriesSet {
        channels,
        len: spec.len,
        class_names,
        values: Vec::with_capacity(kept.len() * c_n * spec.len),
        labels: Vec::with_capacity(kept.len()),
        subjects: Vec::with_capacity(kept.len()),
    };
    for (r, start, label) in kept {
        let rec = &recordings[r];
        for c in 0..c_n {
            set.values
                .extend((start..start + spec.len).map(|t| rec.values[t * c_n + c]));
        }
        set.labels.push(index[&label]);
        set.subjects.push(rec.subject.clone());
    }
    Ok(set)
}

/// The label of the window of `rec` at `start`, by `spec`'s rule.
fn window_label<'a>(rec: &'a Recording, start: usize, spec: &WindowSpec) -> Option<&'a str> {
    if let RecordingLabels::Whole(l) = &rec.labels {
        return Some(l);
    }
    let steps = start..start + spec.len;
    if spec.single_label {
        let first = rec.label_at(start)?;
        steps
            .clone()
            .all(|t| rec.label_at(t) == Some(first))
            .then_some(first)
    } else {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        let mut best: Option<(&str, usize)> = None;
        for l in steps.filter_map(|t| rec.label_at(t)) {
            let n = match counts.iter_mut().find(|(k, _)| *k == l) {
                Some(e) => {
                    e.1 += 1;
                    e.1
                }
                None => {
                    counts.push((l, 1));
                    1
                }
            };
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((l, n));
            }
        }
        best.map(|(l, _)| l)
    }
}

/// The channels all recordings share.
fn same_channels(recordings: &[Recording]) -> Result<Vec<String>, SeriesError> {
    let Some(first) = recordings.first() else {
        return Err(SeriesError::BadArgument("no recordings".into()));
    };
    for r in recordings {
        if r.channels != first.channels {
            return Err(SeriesError::Mismatch {
                what: format!("{} and {}", first.source.display(), r.source.display()),
                reason: format!("channels {:?} and {:?} differ", first.channels, r.channels),
            });
        }
    }
    Ok(first.channels.clone())
}

/// Class name → label index, refusing more classes than a `u8` holds.
fn class_index(class_names: &[String]) -> Result<HashMap<String, u8>, SeriesError> {
    if class_names.len() > 256 {
        return Err(SeriesError::BadArgument(format!(
            "{} classes, at most 256 fit u8 labels",
            class_names.len()
        )));
    }
    Ok(class_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i as u8))
        .collect())
}

/// One window per whole-labelled case (`.ts`), zero-padded at the end or truncated to `len`.
///
/// # Errors
/// [`SeriesError::BadArgument`] for `len == 0`, no cases, or more than 256 classes;
/// [`SeriesError::Mismatch`] for cases with different channels, a per-step-labelled recording
/// (window those with [`windows`]), or a label not in `class_names` (naming the file).
pub fn fixed_length(
    cases: &[Recording],
    len: usize,
    class_names: &[String],
) -> Result<SeriesSet, SeriesError> {
    if len == 0 {
        return Err(SeriesError::BadArgument("fixed length 0".into()));
    }
    let channels = same_channels(cases)?;
    let index = class_index(class_names)?;
    let c_n = channels.len();
    let mut set = SeriesSet {
        channels,
        len,
        class_names: class_names.to_vec(),
        values: Vec::with_capacity(cases.len() * c_n * len),
        labels: Vec::with_capacity(cases.len()),
        subjects: Vec::with_capacity(cases.len()),
    };
    for (i, case) in cases.iter().enumerate() {
        let RecordingLabels::Whole(label) = &case.labels else {
            return Err(SeriesError::Mismatch {
                what: case.source.display().to_string(),
                reason: format!("case {i} is labelled per step; cut streams with windows()"),
            });
        };
        let Some(&l) = index.get(label) else {
            return Err(SeriesError::Mismatch {
                what: case.source.display().to_string(),
                reason: format!("case {i}: label {label:?} is not one of {class_names:?}"),
            });
        };
        let steps = case.steps();
        for c in 0..c_n {
            set.values.extend((0..len).map(|t| {
                if t < steps {
                    case.values[t * c_n + c]
                } else {
                    0.0
                }
            }));
        }
        set.labels.push(l);
        set.subjects.push(case.subject.clone());
    }
    Ok(set)
}

/// Per-channel standardisation: `(x − mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalizer {
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Population standard deviation per channel (1 where the channel is constant).
    pub std: Vec<f32>,
}

impl Normalizer {
    /// Fits mean and standard deviation per channel over every window and step of `set`: pass the
    /// training split only. Padding zeros of [`fixed_length`] count like any sample.
    ///
    /// # Errors
    /// [`SeriesError::BadArgument`] for an empty set.
    pub fn fit(set: &SeriesSet) -> Result<Normalizer, SeriesError> {
        if set.n() == 0 || set.len == 0 {
            return Err(SeriesError::BadArgument(
                "cannot fit a normalizer on an empty set".into(),
            ));
        }
        let c_n = set.channels.len();
        let mut sum = vec![0f64; c_n];
        let mut sq = vec![0f64; c_n];
        for (k, chunk) in set.values.chunks_exact(set.len).enumerate() {
            let c = k % c_n;
            for &x in chunk {
                sum[c] += f64::from(x);
                sq[c] += f64::from(x) * f64::from(x);
            }
        }
        let count = (set.n() * set.len) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| {
                let s = (q / count - m * m).max(0.0).sqrt() as f32;
                if s > 0.0 && s.is_finite() {
                    s
                } else {
                    1.0
                }
            })
            .collect();
        Ok(Normalizer {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        })
    }

    /// Standardises `set` in place.
    ///
    /// # Errors
    /// [`SeriesError::Mismatch`] if `set` has a different number of channels than the fit.
    pub fn apply(&self, set: &mut SeriesSet) -> Result<(), SeriesError> {
        let c_n = set.channels.len();
        if c_n != self.mean.len() {
            return Err(SeriesError::Mismatch {
                what: "normalizer and series set".into(),
                reason: format!("fitted on {} channels, the set has {c_n}", self.mean.len()),
            });
        }
        if set.len == 0 {
            return Ok(());
        }
        for (k, chunk) in set.values.chunks_exact_mut(set.len).enumerate() {
            let c = k % c_n;
            let (m, s) = (self.mean[c], self.std[c]);
            for x in chunk {
                *x = (*x - m) / s;
            }
        }
        Ok(())
    }
}

/// Splits `set` by subject: windows of `test_subjects` go to the second set, all others
/// (including windows without a subject) to the first.
///
/// # Errors
/// [`SeriesError::BadArgument`] if a test subject has no window in `set` (listing the subjects
/// there are).
pub fn split_by_subjects(
    set: &SeriesSet,
    test_subjects: &[&str],
) -> Result<(SeriesSet, SeriesSet), SeriesError> {
    let present = set.subject_names();
    let missing: Vec<&str> = test_subjects
        .iter()
        .copied()
        .filter(|s| !present.iter().any(|p| p == s))
        .collect();
    if !missing.is_empty() {
        return Err(SeriesError::BadArgument(format!(
            "test subject(s) {missing:?} have no windows; subjects: {present:?}"
        )));
    }
    let (test, train): (Vec<usize>, Vec<usize>) = (0..set.n()).partition(|&i| {
        set.subjects[i]
            .as_deref()
            .is_some_and(|s| test_subjects.contains(&s))
    });
    Ok((set.subset(&train), set.subset(&test)))
}

/// The set restricted to `channels` (names or indices), in that order.
///
/// # Errors
/// [`SeriesError::ChannelUnknown`] naming the unknown channels and listing the available ones.
pub fn select_channels(set: &SeriesSet, channels: &[ChannelRef]) -> Result<SeriesSet, SeriesError> {
    let idx = resolve_channels(&set.channels, channels, "the series set")?;
    let c_n = set.channels.len();
    let mut values = Vec::with_capacity(set.n() * idx.len() * set.len);
    for i in 0..set.n() {
        for &c in &idx {
            let at = (i * c_n + c) * set.len;
            values.extend_from_slice(&set.values[at..at + set.len]);
        }
    }
    Ok(SeriesSet {
        channels: idx.iter().map(|&c| set.channels[c].clone()).collect(),
        values,
        ..set.clone_without_values()
    })
}

/// The recording restricted to `channels` (names or indices), in that order.
///
/// # Errors
/// [`SeriesError::ChannelUnknown`] naming the file, the unknown channels and the available ones.
pub fn select_recording_channels(
    rec: &Recording,
    channels: &[ChannelRef],
) -> Result<Recording, SeriesError> {
    let idx = resolve_channels(&rec.channels, channels, &rec.source.display().to_string())?;
    let c_n = rec.channels.len();
    let values = rec
        .values
        .chunks_exact(c_n)
        .flat_map(|row| idx.iter().map(move |&c| row[c]))
        .collect();
    Ok(Recording {
        source: rec.source.clone(),
        channels: idx.iter().map(|&c| rec.channels[c].clone()).collect(),
        rate_hz: rec.rate_hz,
        values,
        labels: rec.labels.clone(),
        subject: rec.subject.clone(),
    })
}

impl SeriesSet {
    /// A copy with no values (and the same channels), for building a transformed set.
    fn clone_without_values(&self) -> SeriesSet {
        SeriesSet {
            channels: self.channels.clone(),
            len: self.len,
            class_names: self.class_names.clone(),
            values: Vec::new(),
            labels: self.labels.clone(),
            subjects: self.subjects.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(subject: &str, labels: &[Option<&str>]) -> Recording {
        let t_n = labels.len();
        Recording {
            source: format!("{subject}.csv").into(),
            channels: vec!["a".into(), "b".into()],
            rate_hz: Some(50.0),
            // a = t, b = 100 + t
            values: (0..t_n)
                .flat_map(|t| [t as f32, 100.0 + t as f32])
                .collect(),
            labels: RecordingLabels::PerStep(labels.iter().map(|l| l.map(String::from)).collect()),
            subject: Some(subject.into()),
        }
    }

    const W: Option<&str> = Some("walk");
    const S: Option<&str> = Some("sit");
    const T: Option<&str> = Some("turn");

    #[test]
    fn single_label_windows_drop_mixed_and_unlabelled() {
        let r = stream("p1", &[W, W, W, W, S, S, None, S, S, S]);
        let spec = WindowSpec {
            len: 2,
            stride: 2,
            single_label: true,
        };
        let set = windows(&[r], &spec, None).unwrap();
        // windows at 0 (W W), 2 (W W), 4 (S S), 6 (None S: dropped), 8 (S S)
        assert_eq!(set.class_names, ["sit", "walk"]);
        assert_eq!(set.labels, [1, 1, 0, 0]);
        assert_eq!(set.window(2), [4., 5., 104., 105.]);
        assert_eq!(set.window(3), [8., 9., 108., 109.]);
        assert_eq!(set.subjects, vec![Some("p1".to_string()); 4]);
    }

    #[test]
    fn majority_windows_and_class_filter() {
        let r = stream("p1", &[W, S, S, None, None, None, T, T, W]);
        let spec = WindowSpec {
            len: 3,
            stride: 3,
            single_label: false,
        };
        let set = windows(std::slice::from_ref(&r), &spec, None).unwrap();
        assert_eq!(set.class_names, ["sit", "turn"]);
        assert_eq!(set.labels, [0, 1]); // (W S S) → sit, (None×3) dropped, (T T W) → turn
        let names = ["walk".to_string(), "sit".to_string()];
        let only = windows(&[r], &spec, Some(&names)).unwrap();
        assert_eq!(only.class_names, names);
        assert_eq!(only.labels, [1]); // turn is not a requested class
        let short = stream("p2", &[W]);
        assert_eq!(windows(&[short], &spec, None).unwrap().n(), 0);
    }

    #[test]
    fn windowing_errors() {
        let r = stream("p1", &[W, W]);
        let bad = WindowSpec {
            len: 0,
            stride: 1,
            single_label: true,
        };
        assert!(matches!(
            windows(std::slice::from_ref(&r), &bad, None),
            Err(SeriesError::BadArgument(_))
        ));
        let mut other = r.clone();
        other.channels = vec!["a".into(), "c".into()];
        other.source = "q.csv".into();
        let spec = WindowSpec {
            len: 1,
            stride: 1,
            single_label: true,
        };
        let e = windows(&[r, other], &spec, None).unwrap_err().to_string();
        assert!(
            e.contains("p1.csv and q.csv") && e.contains("differ"),
            "{e}"
        );
    }

    fn case(values: &[f32], label: &str) -> Recording {
        Recording {
            source: "toy.ts".into(),
            channels: vec!["dim_0".into(), "dim_1".into()],
            rate_hz: None,
            values: values.to_vec(),
            labels: RecordingLabels::Whole(label.into()),
            subject: None,
        }
    }

    #[test]
    fn fixed_length_pads_and_truncates() {
        let names = ["a".to_string(), "b".to_string()];
        let cases = [
            case(&[1., 2., 3., 4.], "b"),
            case(&[1., 2., 3., 4., 5., 6., 7., 8.], "a"),
        ];
        let set = fixed_length(&cases, 3, &names).unwrap();
        assert_eq!(set.labels, [1, 0]);
        assert_eq!(set.window(0), [1., 3., 0., 2., 4., 0.]);
        assert_eq!(set.window(1), [1., 3., 5., 2., 4., 6.]);
        let e = fixed_length(&[case(&[1., 2.], "z")], 3, &names)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("toy.ts") && e.contains("case 0: label \"z\""),
            "{e}"
        );
        // Windowing whole-labelled cases works too (every step has the case's label).
        let spec = WindowSpec {
            len: 2,
            stride: 1,
            single_label: true,
        };
        assert_eq!(
            windows(&cases, &spec, Some(&names)).unwrap().labels,
            [1, 0, 0, 0]
        );
    }

    #[test]
    fn normalizer_fits_train_and_applies_anywhere() {
        let r = stream("p1", &[W, W, W, W]);
        let spec = WindowSpec {
            len: 2,
            stride: 2,
            single_label: true,
        };
        let mut train = windows(&[r], &spec, None).unwrap();
        // a: 0 1 2 3 (mean 1.5, std sqrt(1.25)); b: 100..103
        let norm = Normalizer::fit(&train).unwrap();
        assert_eq!(norm.mean, [1.5, 101.5]);
        assert!((norm.std[0] - 1.25f32.sqrt()).abs() < 1e-6);
        norm.apply(&mut train).unwrap();
        let m: f32 = train.values.iter().sum::<f32>() / train.values.len() as f32;
        assert!(m.abs() < 1e-5);
        let constant = SeriesSet {
            channels: vec!["k".into()],
            len: 2,
            class_names: vec!["x".into()],
            values: vec![5., 5.],
            labels: vec![0],
            subjects: vec![None],
        };
        let n = Normalizer::fit(&constant).unwrap();
        assert_eq!((n.mean[0], n.std[0]), (5.0, 1.0));
        let mut other = constant.clone();
        assert!(matches!(
            norm.apply(&mut other),
            Err(SeriesError::Mismatch { .. })
        ));
        let empty = constant.subset(&[]);
        assert!(Normalizer::fit(&empty).is_err());
    }

    #[test]
    fn subject_split() {
        let spec = WindowSpec {
            len: 2,
            stride: 2,
            single_label: true,
        };
        let recs = [
            stream("p1", &[W, W, S, S]),
            stream("p2", &[W, W]),
            stream("p3", &[S, S]),
        ];
        let set = windows(&recs, &spec, None).unwrap();
        let (train, test) = split_by_subjects(&set, &["p2", "p3"]).unwrap();
        assert_eq!(train.subject_names(), ["p1"]);
        assert_eq!(test.subject_names(), ["p2", "p3"]);
        assert_eq!((train.n(), test.n()), (2, 2));
        let e = split_by_subjects(&set, &["p9"]).unwrap_err().to_string();
        assert!(e.contains("p9") && e.contains("p1"), "{e}");
    }

    #[test]
    fn channel_selection_by_name_and_index() {
        let spec = WindowSpec {
            len: 2,
            stride: 2,
            single_label: true,
        };
        let set = windows(&[stream("p1", &[W, W, W, W])], &spec, None).unwrap();
        let b = select_channels(&set, &["b".into()]).unwrap();
        assert_eq!(b.channels, ["b"]);
        assert_eq!(b.values, [100., 101., 102., 103.]);
        let swapped = select_channels(&set, &[1.into(), 0.into()]).unwrap();
        assert_eq!(swapped.window(0), [100., 101., 0., 1.]);
        let e = select_channels(&set, &["gyro_x".into(), 5.into()])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown channel(s) \"gyro_x\", 5 in the series set; available: 0: a, 1: b"
        );
        let r = select_recording_channels(&stream("p1", &[W, S]), &["b".into()]).unwrap();
        assert_eq!(r.values, [100., 101.]);
        let e = select_recording_channels(&r, &["a".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("p1.csv") && e.contains("available: 0: b"), "{e}");
    }
}
