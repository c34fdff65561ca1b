//! NumPy `.npy` recordings: a 2-D `T × K` array, one row per time step, one column the label.
//!
//! An NPY file is the magic `\x93NUMPY`, a version (1.0, 2.0 or 3.0), a little-endian header
//! length (`u16` in version 1, `u32` after), a Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (T, K), }` padded with spaces, then the data.
//!
//! Supported: versions 1–3, little-endian (or byte-order-free) `f4`, `f8`, `i1`…`i8`, `u1`…`u8`,
//! C order, 2-D arrays. Not supported, each an error naming the file and what is wrong:
//! big-endian data, other dtypes (bool, complex, strings, records), Fortran order, other ranks,
//! and bodies shorter or longer than the header promises.
//!
//! [`read_npy_recording`] turns such an array into a [`Recording`]: the label column's values must
//! be whole numbers; a negative or NaN label marks an unlabelled step (the `-1` convention of
//! HAPT-style data), any other becomes the label text (`3.0` → `"3"`).

use std::path::Path;

use super::{read_file, Recording, RecordingLabels, SeriesError};

/// The NPY magic string.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// A 2-D NPY array, converted to `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// `[rows, columns]`.
    pub shape: [usize; 2],
    /// The dtype as the header wrote it (`<f4`…).
    pub descr: String,
    /// Row-major elements.
    pub data: Vec<f64>,
}

/// Options of [`read_npy_recording`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NpyOptions {
    /// The label column index.
    pub label_column: usize,
    /// Names of the other columns, in order; `None` names them `col_<index>` (their column index).
    pub channel_names: Option<Vec<String>>,
    /// The sample rate to record.
    pub rate_hz: Option<f64>,
    /// The subject to record.
    pub subject: Option<String>,
}

/// Reads a 2-D NPY array.
///
/// # Errors
/// [`SeriesError::Io`]; [`SeriesError::NpyHeader`] for a bad magic, version, header dict, dtype,
/// byte order, Fortran order or rank; [`SeriesError::NpyData`] for a truncated or over-long body.
pub fn read_npy(path: &Path) -> Result<NpyArray, SeriesError> {
    parse_npy(&read_file(path)?, path)
}

/// Parses NPY bytes already in memory; `path` only names the file in errors.
///
/// # Errors
/// As [`read_npy`], minus the I/O errors.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<NpyArray, SeriesError> {
    let header_err = |reason: String| SeriesError::NpyHeader {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(header_err("no \\x93NUMPY magic".into()));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_bytes, start) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => {
            return Err(header_err(format!(
                "version {major}.{minor}, expected 1.0, 2.0 or 3.0"
            )))
        }
    };
    let Some(len_field) = bytes.get(8..8 + len_bytes) else {
        return Err(header_err("file ends inside the header length".into()));
    };
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let Some(header) = bytes.get(start..start + header_len) else {
        return Err(header_err(format!(
            "header of {header_len} bytes runs past the end of the {}-byte file",
            bytes.len()
        )));
    };
    let header =
        std::str::from_utf8(header).map_err(|_| header_err("header is not text".into()))?;

    let descr = dict_value(header, "descr")
        .and_then(|v| {
            v.strip_prefix('\'')
                .and_then(|v| v.split_once('\''))
                .map(|(d, _)| d)
        })
        .ok_or_else(|| header_err(format!("no 'descr' string in header {header:?}")))?;
    let fortran = dict_value(header, "fortran_order")
        .ok_or_else(|| header_err(format!("no 'fortran_order' in header {header:?}")))?;
    if fortran.starts_with("True") {
        return Err(header_err("Fortran-ordered array (fortran_order: True); save it in C order (np.ascontiguousarray)".into()));
    } else if !fortran.starts_with("False") {
        return Err(header_err(format!(
            "bad fortran_order in header {header:?}"
        )));
    }
    let shape_text = dict_value(header, "shape")
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.split_once(')'))
        .map(|(s, _)| s)
        .ok_or_else(|| header_err(format!("no 'shape' tuple in header {header:?}")))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| header_err(format!("bad shape ({shape_text})")))?;
    let [rows, cols] = shape[..] else {
        return Err(header_err(format!(
            "{}-D array of shape {shape:?}, expected 2-D (time steps × columns)",
            shape.len()
        )));
    };

    let (order, kind, size) = {
        let mut ch = descr.chars();
        let order = ch.next().unwrap_or(' ');
        let kind = ch.next().unwrap_or(' ');
        (order, kind, ch.as_str().parse::<usize>().unwrap_or(0))
    };
    if order == '>' {
        return Err(header_err(format!(
            "big-endian dtype {descr:?}; only little-endian is supported"
        )));
    }
    let supported = matches!(order, '<' | '|' | '=')
        && match kind {
            'f' => matches!(size, 4 | 8),
            'i' | 'u' => matches!(size, 1 | 2 | 4 | 8),
            _ => false,
        };
    if !supported {
        return Err(header_err(format!(
            "dtype {descr:?} is not supported (f4, f8, i1..i8, u1..u8, little-endian)"
        )));
    }
    let n = rows
        .checked_mul(cols)
        .ok_or_else(|| header_err(format!("shape {shape:?} overflows")))?;
    let expected = n
        .checked_mul(size)
        .ok_or_else(|| header_err(format!("shape {shape:?} overflows")))?;
    let body = &bytes[start + header_len..];
    if body.len() < expected {
        return Err(SeriesError::NpyData {
            path: path.to_path_buf(),
            reason: format!(
                "truncated: shape ({rows}, {cols}) of {descr} needs {expected} data bytes, the file has {} (row {} is the first incomplete one)",
                body.len(),
                body.len() / (cols * size).max(1)
            ),
        });
    }
    if body.len() > expected {
        return Err(SeriesError::NpyData {
            path: path.to_path_buf(),
            reason: format!(
                "{} bytes after the ({rows}, {cols}) {descr} array its header describes",
                body.len() - expected
            ),
        });
    }
    let data = body
        .chunks_exact(size)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(c);
            let sign_fill = |b: &mut [u8; 8]| {
                if c[size - 1] & 0x80 != 0 {
                    b[size..].fill(0xff);
                }
            };
            match (kind, size) {
                ('f', 4) => f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                ('f', _) => f64::from_le_bytes(b),
                ('u', _) => u64::from_le_bytes(b) as f64,
                _ => {
                    sign_fill(&mut b);
                    i64::from_le_bytes(b) as f64
                }
            }
        })
        .collect();
    Ok(NpyArray {
        shape: [rows, cols],
        descr: descr.to_string(),
        data,
    })
}

/// The text after `'key':` in an NPY header dict, leading spaces trimmed.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let quoted = format!("'{key}'");
    let at = header.find(&quoted)? + quoted.len();
    Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
}

/// Reads a `T × K` NPY array as one recording: column `label_column` gives the per-step labels,
/// the other `K − 1` columns the channels.
///
/// # Errors
/// As [`read_npy`]; [`SeriesError::NpyData`] if the label column is out of range, a label is not a
/// whole number (naming the row), or [`NpyOptions::channel_names`] has the wrong length.
pub fn read_npy_recording(path: &Path, options: &NpyOptions) -> Result<Recording, SeriesError> {
    let a = read_npy(path)?;
    let data_err = |reason: String| SeriesError::NpyData {
        path: path.to_path_buf(),
        reason,
    };
    let [rows, cols] = a.shape;
    if options.label_column >= cols {
        return Err(data_err(format!(
            "label column {} out of range for {cols} columns",
            options.label_column
        )));
    }
    if cols < 2 {
        return Err(data_err("only the label column, no channels".into()));
    }
    let channel_cols: Vec<usize> = (0..cols).filter(|&c| c != options.label_column).collect();
    let channels = match &options.channel_names {
        Some(names) if names.len() != channel_cols.len() => {
            return Err(data_err(format!(
                "{} channel names for {} channel columns",
                names.len(),
                channel_cols.len()
            )));
        }
        Some(names) => names.clone(),
        None => channel_cols.iter().map(|c| format!("col_{c}")).collect(),
    };
    let mut values = Vec::with_capacity(rows * channel_cols.len());
    let mut labels = Vec::with_capacity(rows);
    for (t, row) in a.data.chunks_exact(cols).enumerate() {
        values.extend(channel_cols.iter().map(|&c| row[c] as f32));
        let l = row[options.label_column];
        labels.push(if l.is_nan() || l < 0.0 {
            None
        } else if l.fract() == 0.0 && l < 1e15 {
            Some(format!("{}", l as u64))
        } else {
            return Err(data_err(format!(
                "row {t}: label {l} in column {} is not a whole number",
                options.label_column
            )));
        });
    }
    Ok(Recording {
        source: path.to_path_buf(),
        channels,
        rate_hz: options.rate_hz,
        values,
        labels: RecordingLabels::PerStep(labels),
        subject: options.subject.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// An NPY file as NumPy writes it: header padded with spaces to a multiple of 64 bytes.
    fn npy(version: u8, descr: &str, fortran: bool, shape: &str, body: &[u8]) -> Vec<u8> {
        let dict = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        let prefix = if version == 1 { 10 } else { 12 };
        let mut header = dict.into_bytes();
        while (prefix + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut out = MAGIC.to_vec();
        out.extend([version, 0]);
        if version == 1 {
            out.extend((header.len() as u16).to_le_bytes());
        } else {
            out.extend((header.len() as u32).to_le_bytes());
        }
        out.extend(header);
        out.extend(body);
        out
    }

    fn write(dir: &Path, bytes: &[u8]) -> PathBuf {
        let p = dir.join("rec.npy");
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn every_dtype_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let vals = [1.0f64, -2.0, 3.0, 4.0];
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "<f4",
                vals.iter()
                    .flat_map(|&v| (v as f32).to_le_bytes())
                    .collect(),
            ),
            ("<f8", vals.iter().flat_map(|&v| v.to_le_bytes()).collect()),
            (
                "|i1",
                vals.iter().flat_map(|&v| (v as i8).to_le_bytes()).collect(),
            ),
            (
                "<i2",
                vals.iter()
                    .flat_map(|&v| (v as i16).to_le_bytes())
                    .collect(),
            ),
            (
                "<i4",
                vals.iter()
                    .flat_map(|&v| (v as i32).to_le_bytes())
                    .collect(),
            ),
            (
                "<i8",
                vals.iter()
                    .flat_map(|&v| (v as i64).to_le_bytes())
                    .collect(),
            ),
        ];
        for version in [1, 2, 3] {
            for (descr, body) in &cases {
                let p = write(dir.path(), &npy(version, descr, false, "(2, 2)", body));
                let a = read_npy(&p).unwrap();
                assert_eq!(a.shape, [2, 2], "{descr}");
                assert_eq!(a.data, vals, "{descr} v{version}");
            }
        }
        for descr in ["|u1", "<u2", "<u4", "<u8"] {
            let size: usize = descr[2..].parse().unwrap();
            let mut body = Vec::new();
            for v in [1u64, 200, 3, u64::from(u8::MAX)] {
                body.extend(&v.to_le_bytes()[..size]);
            }
            let p = write(dir.path(), &npy(1, descr, false, "(2, 2)", &body));
            assert_eq!(read_npy(&p).unwrap().data, [1., 200., 3., 255.], "{descr}");
        }
    }

    #[test]
    fn recording_with_label_column() {
        let dir = tempfile::tempdir().unwrap();
        // columns: x, label, y; labels -1 (unlabelled), 2, 3
        let rows = [[0.5f32, -1., 1.], [1.5, 2., 2.], [2.5, 3., 3.]];
        let body: Vec<u8> = rows
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let p = write(dir.path(), &npy(1, "<f4", false, "(3, 3)", &body));
        let opts = NpyOptions {
            label_column: 1,
            subject: Some("s1".into()),
            ..Default::default()
        };
        let r = read_npy_recording(&p, &opts).unwrap();
        assert_eq!(r.channels, ["col_0", "col_2"]);
        assert_eq!(r.values, [0.5, 1., 1.5, 2., 2.5, 3.]);
        assert_eq!(
            r.labels,
            RecordingLabels::PerStep(vec![None, Some("2".into()), Some("3".into())])
        );
        assert_eq!(r.subject.as_deref(), Some("s1"));
    }

    fn fails(bytes: &[u8], opts: &NpyOptions, needle: &str) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), bytes);
        let msg = read_npy_recording(&p, opts).unwrap_err().to_string();
        assert!(
            msg.contains(&p.display().to_string()),
            "{msg:?} should name the file"
        );
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }

    #[test]
    fn malformed_files_name_file_and_fault() {
        let o = NpyOptions::default();
        let f4 = |n: usize| vec![0u8; 4 * n];
        fails(b"not an npy file", &o, "no \\x93NUMPY magic");
        fails(&npy(1, "<f4", false, "(2, 2)", &f4(4))[..9], &o, "magic");
        let mut v9 = npy(1, "<f4", false, "(2, 2)", &f4(4));
        v9[6] = 9;
        fails(&v9, &o, "version 9.0");
        fails(&npy(1, ">f4", false, "(2, 2)", &f4(4)), &o, "big-endian");
        fails(
            &npy(1, "<c8", false, "(2, 2)", &f4(8)),
            &o,
            "dtype \"<c8\" is not supported",
        );
        fails(
            &npy(1, "|b1", false, "(2, 2)", &[0; 4]),
            &o,
            "is not supported",
        );
        fails(
            &npy(1, "<f4", true, "(2, 2)", &f4(4)),
            &o,
            "Fortran-ordered",
        );
        fails(&npy(1, "<f4", false, "(4,)", &f4(4)), &o, "1-D array");
        fails(
            &npy(1, "<f4", false, "(2, 2)", &f4(3)),
            &o,
            "truncated: shape (2, 2) of <f4 needs 16 data bytes, the file has 12 (row 1",
        );
        fails(&npy(1, "<f4", false, "(2, 2)", &f4(5)), &o, "4 bytes after");
        let mut long = npy(1, "<f4", false, "(2, 2)", &[]);
        long.truncate(30);
        fails(&long, &o, "runs past the end");
        let half: Vec<u8> = [1.0f32, 0.5, 2.0, 1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let l1 = NpyOptions {
            label_column: 1,
            ..Default::default()
        };
        fails(
            &npy(1, "<f4", false, "(2, 2)", &half),
            &l1,
            "row 0: label 0.5 in column 1 is not a whole number",
        );
        let l5 = NpyOptions {
            label_column: 5,
            ..Default::default()
        };
        fails(
            &npy(1, "<f4", false, "(2, 2)", &half),
            &l5,
            "label column 5 out of range",
        );
        let names = NpyOptions {
            channel_names: Some(vec![]),
            ..Default::default()
        };
        fails(
            &npy(1, "<f4", false, "(2, 2)", &half),
            &names,
            "0 channel names for 1 channel columns",
        );
    }
}
