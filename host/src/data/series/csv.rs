//! CSV recordings: a header row naming the columns, one row per time step.
//!
//! One column holds the label (an empty cell is an unlabelled step), an optional one the subject;
//! the channels are the other columns (or the ones named in [`CsvOptions::channels`], in that
//! order). Rows are in time order. A file becomes one [`Recording`] per contiguous run of one
//! subject, so a file holding several subjects one after the other splits cleanly and no window
//! straddles two people.
//!
//! ```text
//! subject,label,acc_x,acc_y,acc_z
//! 1,,0.918,-0.112,0.509
//! 1,WALKING,0.911,-0.093,0.537
//! ```
//!
//! This is the format `tools/setup-sensor-data.sh` writes UCI HAPT in. Quoting, `#`-free plain
//! CSV and other delimiters ([`CsvOptions::delimiter`]) come from the `csv` crate; every value must
//! be a finite number. Errors name the file and the 1-based line (the header is line 1).

use std::path::Path;

use super::{Recording, RecordingLabels, SeriesError};

/// Options of [`read_csv`].
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    /// The header name of the label column.
    pub label_column: String,
    /// The header name of the subject column, if any.
    pub subject_column: Option<String>,
    /// The channel columns, in the order wanted; `None` takes every other column in file order.
    pub channels: Option<Vec<String>>,
    /// The sample rate to record in each [`Recording`] (CSV does not say).
    pub rate_hz: Option<f64>,
    /// Field delimiter (default `b','`).
    pub delimiter: u8,
}

impl CsvOptions {
    /// Labels from `label_column`, no subject column, all other columns as channels, `,`.
    pub fn new(label_column: &str) -> Self {
        CsvOptions {
            label_column: label_column.to_string(),
            subject_column: None,
            channels: None,
            rate_hz: None,
            delimiter: b',',
        }
    }
}

/// Reads a CSV recording file: one [`Recording`] per contiguous run of one subject (one for the
/// whole file without a subject column).
///
/// # Errors
/// [`SeriesError::Io`] if the file cannot be opened; [`SeriesError::CsvSyntax`] (file and line)
/// for a missing label/subject/channel column, a row with the wrong number of fields, a value that
/// is not a finite number, or a file without data rows.
pub fn read_csv(path: &Path, options: &CsvOptions) -> Result<Vec<Recording>, SeriesError> {
    let err = |line: u64, reason: String| SeriesError::CsvSyntax {
        path: path.to_path_buf(),
        line: usize::try_from(line).unwrap_or(usize::MAX),
        reason,
    };
    let csv_err = |e: ::csv::Error| match e.kind() {
        ::csv::ErrorKind::Io(_) => match e.into_kind() {
            ::csv::ErrorKind::Io(io) => SeriesError::io(path, io),
            _ => unreachable!("matched Io above"),
        },
        _ => {
            let line = e.position().map_or(0, ::csv::Position::line);
            err(line, e.to_string())
        }
    };
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(options.delimiter)
        .flexible(true)
        .from_path(path)
        .map_err(csv_err)?;
    let header: Vec<String> = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let find = |name: &str, what: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            err(
                1,
                format!("no {what} column {name:?} in the header {header:?}"),
            )
        })
    };
    let label_col = find(&options.label_column, "label")?;
    let subject_col = options
        .subject_column
        .as_deref()
        .map(|s| find(s, "subject"))
        .transpose()?;
    let channel_cols: Vec<usize> = match &options.channels {
        Some(names) => names
            .iter()
            .map(|n| find(n, "channel"))
            .collect::<Result<_, _>>()?,
        None => (0..header.len())
            .filter(|&c| c != label_col && Some(c) != subject_col)
            .collect(),
    };
    if channel_cols.is_empty() {
        return Err(err(1, "no channel columns".into()));
    }
    let channels: Vec<String> = channel_cols.iter().map(|&c| header[c].clone()).collect();

    let new_rec = |subject: Option<String>| Recording {
        source: path.to_path_buf(),
        channels: channels.clone(),
        rate_hz: options.rate_hz,
        values: Vec::new(),
        labels: RecordingLabels::PerStep(Vec::new()),
        subject,
    };
    let mut out: Vec<Recording> = Vec::new();
    let mut record = ::csv::StringRecord::new();
    loop {
        let more = reader.read_record(&mut record).map_err(csv_err)?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, ::csv::Position::line);
        if record.len() == 1 && record.get(0).is_some_and(|f| f.trim().is_empty()) {
            continue; // a blank line
        }
        if record.len() != header.len() {
            return Err(err(
                line,
                format!("{} fields, the header has {}", record.len(), header.len()),
            ));
        }
        let subject = subject_col
            .map(|c| record[c].trim())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let same = out.last().is_some_and(|r| r.subject == subject);
        if !same {
            out.push(new_rec(subject));
        }
        let rec = out.last_mut().expect("pushed above");
        for (&c, name) in channel_cols.iter().zip(&channels) {
            let v = record[c].trim();
            let x = v
                .parse::<f32>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| {
                    err(
                        line,
                        format!("column {name:?}: {v:?} is not a finite number"),
                    )
                })?;
            rec.values.push(x);
        }
        let label = record[label_col].trim();
        if let RecordingLabels::PerStep(l) = &mut rec.labels {
            l.push((!label.is_empty()).then(|| label.to_string()));
        }
    }
    if out.is_empty() {
        return Err(err(1, "no data rows after the header".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("rec.csv");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn one_recording_per_subject_run() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "subject,label,x,y\n1,,0.5,1\n1,walk,1.5,2\n\n2,sit,3,4\n1,sit,5,6\n",
        );
        let opts = CsvOptions {
            subject_column: Some("subject".into()),
            rate_hz: Some(50.0),
            ..CsvOptions::new("label")
        };
        let recs = read_csv(&p, &opts).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].channels, ["x", "y"]);
        assert_eq!(recs[0].values, [0.5, 1., 1.5, 2.]);
        assert_eq!(
            recs[0].labels,
            RecordingLabels::PerStep(vec![None, Some("walk".into())])
        );
        assert_eq!(recs[0].subject.as_deref(), Some("1"));
        assert_eq!(recs[1].subject.as_deref(), Some("2"));
        assert_eq!(recs[2].subject.as_deref(), Some("1"));
        assert_eq!(recs[2].rate_hz, Some(50.0));
        assert_eq!(recs[0].source, p);
    }

    #[test]
    fn chosen_channels_in_order_without_subject() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x;y;z;lab\n1;2;3;a\n4;5;6;b\n");
        let opts = CsvOptions {
            channels: Some(vec!["z".into(), "x".into()]),
            delimiter: b';',
            ..CsvOptions::new("lab")
        };
        let recs = read_csv(&p, &opts).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].channels, ["z", "x"]);
        assert_eq!(recs[0].values, [3., 1., 6., 4.]);
        assert_eq!(recs[0].subject, None);
    }

    fn fails(text: &str, opts: &CsvOptions, line: usize, needle: &str) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), text);
        let msg = read_csv(&p, opts).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("{}:{line}: ", p.display())),
            "{msg:?} should name the file and line {line}"
        );
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }

    #[test]
    fn malformed_files_name_file_and_line() {
        let o = CsvOptions::new("label");
        fails(
            "label,x\na,1\nb,oops\n",
            &o,
            3,
            "column \"x\": \"oops\" is not a finite number",
        );
        fails("label,x\na,1\nb,1,2\n", &o, 3, "3 fields, the header has 2");
        fails("label,x\na,1\nb,\n", &o, 3, "\"\" is not a finite number");
        fails("label,x\na,inf\n", &o, 2, "not a finite number");
        fails("lab,x\na,1\n", &o, 1, "no label column \"label\"");
        fails("label,x\n", &o, 1, "no data rows");
        fails("label\na\n", &o, 1, "no channel columns");
        let s = CsvOptions {
            subject_column: Some("who".into()),
            ..o.clone()
        };
        fails("label,x\na,1\n", &s, 1, "no subject column \"who\"");
        let c = CsvOptions {
            channels: Some(vec!["q".into()]),
            ..o
        };
        fails("label,x\na,1\n", &c, 1, "no channel column \"q\"");
    }

    #[test]
    fn missing_file_is_io_error() {
        let e = read_csv(Path::new("/nonexistent/x.csv"), &CsvOptions::new("l")).unwrap_err();
        assert!(matches!(e, SeriesError::Io { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/x.csv"));
    }
}
