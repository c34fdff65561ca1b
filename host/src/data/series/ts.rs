//! The UEA/UCR `.ts` format of sktime and aeon (BasicMotions, JapaneseVowels, …).
//!
//! A `.ts` file is a header of `@tag value` lines (`#` starts a comment) and, after `@data`, one
//! case per line: the dimensions separated by `:`, each a comma-separated series, and the class
//! label last:
//!
//! ```text
//! @problemName Toy
//! @timeStamps false
//! @missing false
//! @univariate false
//! @dimensions 2
//! @equalLength false
//! @classLabel true walk run
//! @data
//! 1.0,2.0,3.0:4.0,5.0,6.0:walk
//! 7.0,8.0:9.0,10.0:run
//! ```
//!
//! Supported: `@problemName`, `@timeStamps false`, `@missing`, `@univariate`, `@dimensions`,
//! `@equalLength` (checked against `@seriesLength` when true), `@seriesLength`, `@classLabel true
//! <names…>` (every case's label must be one of them) and `@data`; unequal lengths across cases;
//! missing values `?` (and `NaN`), rejected by default or filled with a constant
//! ([`Missing::Fill`]). Each case becomes one [`Recording`] with channels `dim_0`, `dim_1`… and a
//! [`RecordingLabels::Whole`] label.
//!
//! Not supported, each an error naming the line: time stamps (`@timeStamps true`, the
//! `(t,v),(t,v)` syntax), regression targets (`@targetLabel`, `@classLabel false`), and cases whose
//! dimensions differ in length (no public classification problem we use has them; pad them first).
//! Other tags (`@dimension`, `@comment`…) are ignored.

use std::path::{Path, PathBuf};

use super::{read_file, Recording, RecordingLabels, SeriesError};

/// What to do with missing values (`?` or `NaN`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Missing {
    /// A missing value is an error naming the line, case, dimension and position.
    #[default]
    Reject,
    /// A missing value becomes this constant.
    Fill(f32),
}

/// Options of [`read_ts`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TsOptions {
    /// Missing values: rejected (default) or filled.
    pub missing: Missing,
}

/// A parsed `.ts` file.
#[derive(Debug, Clone, PartialEq)]
pub struct TsFile {
    /// `@problemName`, if present.
    pub problem_name: Option<String>,
    /// The class names of `@classLabel true`, in declaration order.
    pub class_names: Vec<String>,
    /// Number of dimensions (channels) of every case.
    pub dimensions: usize,
    /// `@seriesLength`, if present.
    pub series_length: Option<usize>,
    /// One recording per case, in file order.
    pub cases: Vec<Recording>,
}

impl TsFile {
    /// The shortest and longest case (in steps); `(0, 0)` without cases.
    pub fn length_range(&self) -> (usize, usize) {
        let lens = self.cases.iter().map(Recording::steps);
        (lens.clone().min().unwrap_or(0), lens.max().unwrap_or(0))
    }
}

/// Reads a `.ts` file.
///
/// # Errors
/// [`SeriesError::Io`] if the file cannot be read, [`SeriesError::TsSyntax`] (file and line) for
/// anything malformed or unsupported (see the module docs).
pub fn read_ts(path: &Path, options: &TsOptions) -> Result<TsFile, SeriesError> {
    let bytes = read_file(path)?;
    let text = String::from_utf8(bytes).map_err(|e| SeriesError::TsSyntax {
        path: path.to_path_buf(),
        line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        reason: "not valid UTF-8".into(),
    })?;
    parse_ts(&text, path, options)
}

/// Parses `.ts` text already in memory; `path` names the file in errors and in the recordings.
///
/// # Errors
/// As [`read_ts`], minus the I/O errors.
pub fn parse_ts(text: &str, path: &Path, options: &TsOptions) -> Result<TsFile, SeriesError> {
    let err = |line: usize, reason: String| SeriesError::TsSyntax {
        path: PathBuf::from(path),
        line,
        reason,
    };
    let mut problem_name = None;
    let mut class_names: Option<Vec<String>> = None;
    let mut dimensions: Option<usize> = None;
    let mut univariate: Option<bool> = None;
    let mut equal_length = false;
    let mut series_length: Option<usize> = None;
    let mut in_data = false;
    let mut cases = Vec::new();

    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !in_data {
            let Some(tagged) = line.strip_prefix('@') else {
                return Err(err(
                    line_no,
                    format!("expected a header tag (@…) or a comment before @data, found {line:?}"),
                ));
            };
            let (tag, rest) = tagged
                .split_once(char::is_whitespace)
                .map_or((tagged, ""), |(t, r)| (t, r.trim()));
            let flag = |rest: &str| -> Result<bool, SeriesError> {
                match rest.to_ascii_lowercase().as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(err(
                        line_no,
                        format!("@{tag} wants true or false, found {rest:?}"),
                    )),
                }
            };
            let count = |rest: &str| -> Result<usize, SeriesError> {
                rest.parse::<usize>().map_err(|_| {
                    err(
                        line_no,
                        format!("@{tag} wants a whole number, found {rest:?}"),
                    )
                })
            };
            match tag.to_ascii_lowercase().as_str() {
                "problemname" => problem_name = Some(rest.to_string()),
                "timestamps" if flag(rest)? => {
                    return Err(err(
                        line_no,
                        "time-stamped series (@timeStamps true) are not supported".into(),
                    ));
                }
                "missing" => {
                    flag(rest)?;
                }
                "univariate" => univariate = Some(flag(rest)?),
                "dimensions" | "dimension" => {
                    let d = count(rest)?;
                    if d == 0 {
                        return Err(err(line_no, "@dimensions 0".into()));
                    }
                    dimensions = Some(d);
                }
                "equallength" => equal_length = flag(rest)?,
                "serieslength" => series_length = Some(count(rest)?),
                "classlabel" => {
                    let mut words = rest.split_whitespace();
                    match words.next().map(str::to_ascii_lowercase).as_deref() {
                        Some("true") => {
                            let names: Vec<String> = words.map(str::to_string).collect();
                            if names.is_empty() {
                                return Err(err(
                                    line_no,
                                    "@classLabel true lists no class names".into(),
                                ));
                            }
                            class_names = Some(names);
                        }
                        Some("false") => {
                            return Err(err(
                                line_no,
                                "unlabelled series (@classLabel false) are not supported".into(),
                            ));
                        }
                        _ => {
                            return Err(err(
                                line_no,
                                format!("@classLabel wants true <names…> or false, found {rest:?}"),
                            ));
                        }
                    }
                }
                "targetlabel" => {
                    return Err(err(
                        line_no,
                        "regression problems (@targetLabel) are not supported".into(),
                    ));
                }
                "data" => {
                    if class_names.is_none() {
                        return Err(err(
                            line_no,
                            "@data before any @classLabel true <names…>".into(),
                        ));
                    }
                    if univariate == Some(true) {
                        if dimensions.is_some_and(|d| d != 1) {
                            return Err(err(
                                line_no,
                                "@univariate true contradicts @dimensions".into(),
                            ));
                        }
                        dimensions = Some(1);
                    }
                    in_data = true;
                }
                _ => {}
            }
            continue;
        }

        // A case: dim_0 : dim_1 : … : label
        let case = cases.len();
        let names = class_names.as_deref().unwrap_or_default();
        let mut parts: Vec<&str> = line.split(':').collect();
        let label = parts.pop().unwrap_or_default().trim();
        if parts.is_empty() {
            return Err(err(
                line_no,
                format!("case {case}: no ':' separating the series from the label"),
            ));
        }
        if !names.iter().any(|n| n == label) {
            return Err(err(
                line_no,
                format!(
                    "case {case}: label {label:?} is not one of the declared classes {names:?}"
                ),
            ));
        }
        let d = *dimensions.get_or_insert(parts.len());
        if parts.len() != d {
            return Err(err(
                line_no,
                format!(
                    "case {case}: {} dimensions, the header says {d}",
                    parts.len()
                ),
            ));
        }
        let mut series: Vec<Vec<f32>> = Vec::with_capacity(d);
        for (dim, part) in parts.iter().enumerate() {
            let part = part.trim();
            if part.starts_with('(') {
                return Err(err(
                    line_no,
                    format!("case {case}: time-stamped values are not supported"),
                ));
            }
            let mut values = Vec::new();
            if !part.is_empty() {
                for (pos, v) in part.split(',').enumerate() {
                    let v = v.trim();
                    let x = if v == "?" || v.eq_ignore_ascii_case("nan") {
                        match options.missing {
                            Missing::Reject => {
                                return Err(err(
                                    line_no,
                                    format!("case {case}, dimension {dim}, value {pos}: missing value {v:?} (use Missing::Fill to fill it)"),
                                ));
                            }
                            Missing::Fill(f) => f,
                        }
                    } else {
                        v.parse::<f32>().ok().filter(|x| x.is_finite()).ok_or_else(|| {
                            err(line_no, format!("case {case}, dimension {dim}, value {pos}: {v:?} is not a number"))
                        })?
                    };
                    values.push(x);
                }
            }
            if values.is_empty() {
                return Err(err(
                    line_no,
                    format!("case {case}, dimension {dim}: empty series"),
                ));
            }
            if let Some(first) = series.first() {
                if first.len() != values.len() {
                    return Err(err(
                        line_no,
                        format!(
                            "case {case}: dimension {dim} has {} values, dimension 0 has {} (dimensions of unequal length within a case are not supported)",
                            values.len(),
                            first.len()
                        ),
                    ));
                }
            }
            series.push(values);
        }
        let steps = series[0].len();
        if equal_length {
            if let Some(l) = series_length {
                if steps != l {
                    return Err(err(
                        line_no,
                        format!(
                            "case {case}: {steps} values per dimension, @seriesLength says {l}"
                        ),
                    ));
                }
            }
        }
        let mut values = Vec::with_capacity(steps * d);
        for t in 0..steps {
            values.extend(series.iter().map(|s| s[t]));
        }
        cases.push(Recording {
            source: path.to_path_buf(),
            channels: (0..d).map(|c| format!("dim_{c}")).collect(),
            rate_hz: None,
            values,
            labels: RecordingLabels::Whole(label.to_string()),
            subject: None,
        });
    }
    if !in_data {
        let last = text.lines().count().max(1);
        return Err(err(last, "no @data section".into()));
    }
    Ok(TsFile {
        problem_name,
        class_names: class_names.unwrap_or_default(),
        dimensions: dimensions.unwrap_or(0),
        series_length,
        cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOY: &str = "# a comment\n@problemName Toy\n@timeStamps false\n@missing true\n\
        @univariate false\n@dimensions 2\n@equalLength false\n@classLabel true walk run\n@data\n\
        1.0,2.0,3.0:4.0,5.0,6.0:walk\n7.0,?:9.0,10.0:run\n";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_unequal_lengths_and_fills_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "toy.ts", TOY);
        let f = read_ts(
            &p,
            &TsOptions {
                missing: Missing::Fill(0.5),
            },
        )
        .unwrap();
        assert_eq!(f.problem_name.as_deref(), Some("Toy"));
        assert_eq!(f.class_names, ["walk", "run"]);
        assert_eq!(f.dimensions, 2);
        assert_eq!(f.cases.len(), 2);
        let c0 = &f.cases[0];
        assert_eq!(c0.channels, ["dim_0", "dim_1"]);
        assert_eq!(c0.values, [1., 4., 2., 5., 3., 6.]);
        assert_eq!(c0.labels, RecordingLabels::Whole("walk".into()));
        assert_eq!(c0.source, p);
        assert_eq!(f.cases[1].values, [7., 9., 0.5, 10.]);
        assert_eq!(f.length_range(), (2, 3));
    }

    #[test]
    fn univariate_without_dimensions_tag() {
        let text = "@univariate true\n@classLabel true a b\n@data\n1,2,3:b\n";
        let f = parse_ts(text, Path::new("u.ts"), &TsOptions::default()).unwrap();
        assert_eq!(f.dimensions, 1);
        assert_eq!(f.cases[0].values, [1., 2., 3.]);
    }

    fn fails(text: &str, line: usize, needle: &str) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "bad.ts", text);
        let e = read_ts(&p, &TsOptions::default()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("{}:{line}: ", p.display())),
            "{msg:?} should name the file and line {line}"
        );
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }

    #[test]
    fn malformed_files_name_file_and_line() {
        let head = "@dimensions 2\n@classLabel true walk run\n@data\n";
        fails(TOY, 11, "case 1, dimension 0, value 1: missing value");
        fails(
            &format!("{head}1,2:3,4:walk\n1,x:3,4:run\n"),
            5,
            "case 1, dimension 0, value 1: \"x\" is not a number",
        );
        fails(
            &format!("{head}1,2:3,4:jump\n"),
            4,
            "label \"jump\" is not one of",
        );
        fails(
            &format!("{head}1,2:walk\n"),
            4,
            "case 0: 1 dimensions, the header says 2",
        );
        fails(
            &format!("{head}1,2:3:walk\n"),
            4,
            "dimension 1 has 1 values, dimension 0 has 2",
        );
        fails(
            &format!("{head}1,2\n"),
            4,
            "case 0: no ':' separating the series from the label",
        );
        fails(
            &format!("{head}1,2:,:walk\n"),
            4,
            "dimension 1, value 0: \"\" is not a number",
        );
        fails("@dimensions 2\n@timeStamps true\n", 2, "not supported");
        fails("@classLabel false\n", 1, "not supported");
        fails("@dimensions two\n", 1, "@dimensions wants a whole number");
        fails("@dimensions 2\n@data\n", 2, "@data before any @classLabel");
        fails("@classLabel true a\n", 1, "no @data section");
        fails("hello\n", 1, "expected a header tag");
        fails(
            "@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n1,2,3:a\n1,2:a\n",
            6,
            "case 1: 2 values per dimension, @seriesLength says 3",
        );
    }
}
