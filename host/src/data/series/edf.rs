//! EDF, EDF+ and BDF files: the formats EEG datasets (PhysioNet EEGMMIDB, …) ship in.
//!
//! An EDF file is a 256-byte ASCII header (version, patient, recording, start, header size,
//! reserved, number of data records, record duration in seconds, number of signals `ns`), then
//! `ns × 256` bytes of per-signal ASCII fields (label, transducer, physical dimension, physical
//! min/max, digital min/max, prefiltering, samples per record, reserved), then the data records:
//! each holds, signal after signal, that signal's samples for the record's duration as 16-bit
//! little-endian integers (EDF) or 24-bit ones (BDF, whose version field is `\xffBIOSEMI`).
//! A digital value `d` is the physical value
//! `(d − dig_min) · (phys_max − phys_min) / (dig_max − dig_min) + phys_min`.
//!
//! EDF+ (reserved field `EDF+C`) adds an `EDF Annotations` signal (`BDF Annotations` in BDF+)
//! whose bytes are time-stamped annotation lists (TALs): `+onset[\x15duration]\x14text\x14…\x00`.
//! The first TAL of each record only keeps time; the others are events, such as EEGMMIDB's
//! `T0`/`T1`/`T2` (rest, left or right fist). [`edf_recording`] turns them into per-step labels.
//!
//! Supported: EDF, EDF+C, BDF, BDF+C; a record count of `-1` (derived from the file size);
//! signals of different rates in one file (each signal is decoded on its own), but a
//! [`Recording`] only from signals of one rate ([`SeriesError::EdfMixedRates`] otherwise:
//! resample first). Not supported: discontinuous EDF+D/BDF+D (refused in the header). Bytes past
//! the last whole record the header counts are ignored.
//!
//! Errors name the file and the field and signal (header) or the record number (data).

use std::path::{Path, PathBuf};

use super::window::{resolve_channels, ChannelRef};
use super::{read_file, Recording, RecordingLabels, SeriesError};

/// EDF (16-bit samples) or BDF (24-bit samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdfKind {
    /// European Data Format, 16-bit samples.
    Edf,
    /// BioSemi Data Format, 24-bit samples.
    Bdf,
}

impl EdfKind {
    /// Bytes per sample.
    pub fn sample_bytes(self) -> usize {
        match self {
            EdfKind::Edf => 2,
            EdfKind::Bdf => 3,
        }
    }
}

/// One signal's header fields.
#[derive(Debug, Clone, PartialEq)]
pub struct EdfSignal {
    /// The label (`Fc5.`, `EDF Annotations`…).
    pub label: String,
    /// Transducer type.
    pub transducer: String,
    /// Physical dimension (`uV`…).
    pub physical_dimension: String,
    /// Physical minimum.
    pub physical_min: f64,
    /// Physical maximum.
    pub physical_max: f64,
    /// Digital minimum.
    pub digital_min: i32,
    /// Digital maximum.
    pub digital_max: i32,
    /// Prefiltering.
    pub prefiltering: String,
    /// Samples per data record.
    pub samples_per_record: usize,
}

impl EdfSignal {
    /// Whether this is an EDF+/BDF+ annotation signal.
    pub fn is_annotations(&self) -> bool {
        self.label == "EDF Annotations" || self.label == "BDF Annotations"
    }
}

/// The file header.
#[derive(Debug, Clone, PartialEq)]
pub struct EdfHeader {
    /// EDF or BDF.
    pub kind: EdfKind,
    /// Local patient identification (EDF+: `code sex birthdate name`).
    pub patient: String,
    /// Local recording identification.
    pub recording: String,
    /// Start date `dd.mm.yy`.
    pub start_date: String,
    /// Start time `hh.mm.ss`.
    pub start_time: String,
    /// The reserved field (`EDF+C` for EDF+, `24BIT` for BDF…).
    pub reserved: String,
    /// Number of data records.
    pub records: usize,
    /// Duration of a data record in seconds.
    pub record_duration: f64,
    /// The signals.
    pub signals: Vec<EdfSignal>,
}

impl EdfHeader {
    /// Sample rate of signal `s` in Hz (samples per record / record duration).
    pub fn rate_hz(&self, s: usize) -> f64 {
        self.signals[s].samples_per_record as f64 / self.record_duration
    }
}

/// One EDF+ annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Seconds from the start of the file.
    pub onset: f64,
    /// Duration in seconds, if given.
    pub duration: Option<f64>,
    /// The text (one annotation per text of a TAL).
    pub text: String,
}

/// A decoded EDF/BDF file.
#[derive(Debug, Clone, PartialEq)]
pub struct EdfFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The header.
    pub header: EdfHeader,
    /// Physical samples per signal (empty for annotation signals).
    pub signals: Vec<Vec<f32>>,
    /// The annotations of all annotation signals, in file order (time-keeping TALs left out).
    pub annotations: Vec<Annotation>,
}

/// Reads an EDF, EDF+ or BDF file.
///
/// # Errors
/// [`SeriesError::Io`]; [`SeriesError::EdfHeader`] for a malformed header (naming the field and
/// signal); [`SeriesError::EdfRecord`] for a truncated data record or a malformed annotation
/// (naming the record).
pub fn read_edf(path: &Path) -> Result<EdfFile, SeriesError> {
    parse_edf(&read_file(path)?, path)
}

/// The ASCII field `bytes[at..at + len]`, trimmed.
fn field(bytes: &[u8], at: usize, len: usize) -> String {
    String::from_utf8_lossy(&bytes[at..at + len])
        .trim()
        .to_string()
}

/// Parses EDF/BDF bytes already in memory; `path` names the file in errors.
///
/// # Errors
/// As [`read_edf`], minus the I/O errors.
pub fn parse_edf(bytes: &[u8], path: &Path) -> Result<EdfFile, SeriesError> {
    let herr = |reason: String| SeriesError::EdfHeader {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 256 {
        return Err(herr(format!(
            "{} bytes, shorter than the 256-byte fixed header",
            bytes.len()
        )));
    }
    let kind = if bytes[0] == 0xff && &bytes[1..8] == b"BIOSEMI" {
        EdfKind::Bdf
    } else if field(bytes, 0, 8) == "0" {
        EdfKind::Edf
    } else {
        return Err(herr(format!(
            "version field {:?} is neither \"0\" (EDF) nor \"\\xffBIOSEMI\" (BDF)",
            String::from_utf8_lossy(&bytes[..8])
        )));
    };
    let num = |at: usize, len: usize, name: &str| -> Result<f64, SeriesError> {
        let s = field(bytes, at, len);
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| herr(format!("{name} field {s:?} is not a number")))
    };
    let header_bytes = num(184, 8, "header size")?;
    let reserved = field(bytes, 192, 44);
    if reserved.starts_with("EDF+D") || reserved.starts_with("BDF+D") {
        return Err(herr(format!(
            "discontinuous recording ({}) is not supported",
            &reserved[..5]
        )));
    }
    let records_field = num(236, 8, "number of data records")?;
    let record_duration = num(244, 8, "record duration")?;
    let ns_f = num(252, 4, "number of signals")?;
    if ns_f < 1.0 || ns_f.fract() != 0.0 {
        return Err(herr(format!(
            "number of signals {ns_f} is not a positive whole number"
        )));
    }
    let ns = ns_f as usize;
    let expected_header = 256 * (ns + 1);
    if header_bytes != expected_header as f64 {
        return Err(herr(format!(
            "header size field says {header_bytes} bytes, {ns} signals need {expected_header}"
        )));
    }
    if bytes.len() < expected_header {
        return Err(herr(format!(
            "{} bytes, shorter than the {expected_header}-byte header of {ns} signals",
            bytes.len()
        )));
    }
    if record_duration <= 0.0 {
        return Err(herr(format!(
            "record duration {record_duration} s is not positive"
        )));
    }
    // Per-signal fields: each field for all signals, then the next field.
    let mut at = 256;
    let mut col = |len: usize| {
        let start = at;
        at += len * ns;
        (0..ns).map(move |s| start + s * len)
    };
    let labels: Vec<String> = col(16).map(|a| field(bytes, a, 16)).collect();
    let transducers: Vec<String> = col(80).map(|a| field(bytes, a, 80)).collect();
    let dims: Vec<String> = col(8).map(|a| field(bytes, a, 8)).collect();
    let field_cols: Vec<Vec<usize>> = (0..4).map(|_| col(8).collect()).collect();
    let prefilters: Vec<String> = col(80).map(|a| field(bytes, a, 80)).collect();
    let samples_at: Vec<usize> = col(8).collect();
    let mut signals = Vec::with_capacity(ns);
    let names = [
        "physical minimum",
        "physical maximum",
        "digital minimum",
        "digital maximum",
    ];
    for s in 0..ns {
        let mut v = [0.0; 4];
        for (k, name) in names.iter().enumerate() {
            v[k] = num(
                field_cols[k][s],
                8,
                &format!("signal {s} ({:?}) {name}", labels[s]),
            )?;
        }
        let spr = num(
            samples_at[s],
            8,
            &format!("signal {s} ({:?}) samples per record", labels[s]),
        )?;
        if spr < 1.0 || spr.fract() != 0.0 {
            return Err(herr(format!(
                "signal {s} ({:?}): samples per record {spr} is not a positive whole number",
                labels[s]
            )));
        }
        let limit = match kind {
            EdfKind::Edf => f64::from(i16::MAX) + 1.0,
            EdfKind::Bdf => f64::from(1 << 23),
        };
        let (dmin, dmax) = (v[2], v[3]);
        if dmin.fract() != 0.0
            || dmax.fract() != 0.0
            || dmin < -limit
            || dmax >= limit
            || dmin >= dmax
        {
            return Err(herr(format!(
                "signal {s} ({:?}): digital minimum {dmin} and maximum {dmax} are not an increasing range of {}-bit integers",
                labels[s],
                kind.sample_bytes() * 8
            )));
        }
        if v[0] == v[1] {
            return Err(herr(format!(
                "signal {s} ({:?}): physical minimum equals physical maximum ({})",
                labels[s], v[0]
            )));
        }
        signals.push(EdfSignal {
            label: labels[s].clone(),
            transducer: transducers[s].clone(),
            physical_dimension: dims[s].clone(),
            physical_min: v[0],
            physical_max: v[1],
            digital_min: dmin as i32,
            digital_max: dmax as i32,
            prefiltering: prefilters[s].clone(),
            samples_per_record: spr as usize,
        });
    }

    let sb = kind.sample_bytes();
    let record_bytes: usize = signals.iter().map(|s| s.samples_per_record * sb).sum();
    let data = &bytes[expected_header..];
    let records = if records_field == -1.0 {
        if !data.len().is_multiple_of(record_bytes) {
            return Err(SeriesError::EdfRecord {
                path: path.to_path_buf(),
                record: data.len() / record_bytes,
                reason: format!(
                    "truncated: {} of {record_bytes} bytes (record count -1, so the file size decides)",
                    data.len() % record_bytes
                ),
            });
        }
        data.len() / record_bytes
    } else if records_field >= 0.0 && records_field.fract() == 0.0 {
        records_field as usize
    } else {
        return Err(herr(format!(
            "number of data records {records_field} is not a whole number or -1"
        )));
    };
    if data.len() < records * record_bytes {
        let record = data.len() / record_bytes;
        return Err(SeriesError::EdfRecord {
            path: path.to_path_buf(),
            record,
            reason: format!(
                "truncated: the header promises {records} records of {record_bytes} bytes, record {record} has only {} bytes",
                data.len() - record * record_bytes
            ),
        });
    }
    let header = EdfHeader {
        kind,
        patient: field(bytes, 8, 80),
        recording: field(bytes, 88, 80),
        start_date: field(bytes, 168, 8),
        start_time: field(bytes, 176, 8),
        reserved,
        records,
        record_duration,
        signals,
    };

    let mut out: Vec<Vec<f32>> = header
        .signals
        .iter()
        .map(|s| {
            if s.is_annotations() {
                Vec::new()
            } else {
                Vec::with_capacity(s.samples_per_record * records)
            }
        })
        .collect();
    let mut annotations = Vec::new();
    for r in 0..records {
        let mut off = r * record_bytes;
        for (s, sig) in header.signals.iter().enumerate() {
            let n = sig.samples_per_record * sb;
            let raw = &data[off..off + n];
            off += n;
            if sig.is_annotations() {
                parse_tals(raw, &mut annotations).map_err(|reason| SeriesError::EdfRecord {
                    path: path.to_path_buf(),
                    record: r,
                    reason: format!("signal {s} ({:?}): {reason}", sig.label),
                })?;
                continue;
            }
            let scale = (sig.physical_max - sig.physical_min)
                / f64::from(sig.digital_max - sig.digital_min);
            let dmin = f64::from(sig.digital_min);
            out[s].extend(raw.chunks_exact(sb).map(|c| {
                let d = match kind {
                    EdfKind::Edf => i32::from(i16::from_le_bytes([c[0], c[1]])),
                    // Sign-extend the 24-bit value through the top byte of an i32.
                    EdfKind::Bdf => i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8,
                };
                ((f64::from(d) - dmin) * scale + sig.physical_min) as f32
            }));
        }
    }
    Ok(EdfFile {
        path: path.to_path_buf(),
        header,
        signals: out,
        annotations,
    })
}

/// Parses the TALs of one record's annotation bytes, appending the event annotations (texts
/// other than the empty time-keeping one).
fn parse_tals(raw: &[u8], out: &mut Vec<Annotation>) -> Result<(), String> {
    for (k, tal) in raw.split(|&b| b == 0).enumerate() {
        if tal.is_empty() {
            continue; // padding after the last TAL, or between TALs
        }
        let mut parts = tal.split(|&b| b == 0x14);
        let time = parts.next().unwrap_or_default();
        let time = std::str::from_utf8(time).map_err(|_| format!("TAL {k}: onset is not text"))?;
        let (onset, duration) = time
            .split_once('\x15')
            .map_or((time, None), |(o, d)| (o, Some(d)));
        if !(onset.starts_with('+') || onset.starts_with('-')) {
            return Err(format!(
                "TAL {k}: onset {onset:?} does not start with + or -"
            ));
        }
        let onset: f64 = onset
            .parse()
            .map_err(|_| format!("TAL {k}: onset {onset:?} is not a number"))?;
        let duration = duration
            .map(|d| {
                d.parse::<f64>()
                    .ok()
                    .filter(|d| *d >= 0.0)
                    .ok_or_else(|| format!("TAL {k}: duration {d:?} is not a non-negative number"))
            })
            .transpose()?;
        if !tal.ends_with(&[0x14]) {
            return Err(format!("TAL {k}: does not end with \\x14 before its \\x00"));
        }
        for text in parts {
            if text.is_empty() {
                continue;
            }
            out.push(Annotation {
                onset,
                duration,
                text: String::from_utf8_lossy(text).into_owned(),
            });
        }
    }
    Ok(())
}

/// One [`Recording`] of the chosen signals (all ordinary signals with `None`; names are signal
/// labels, indices count the ordinary signals only), labelled per step by the annotations: an
/// annotation with a positive duration labels the samples in `[onset, onset + duration)`, one
/// without labels them up to the next annotation's onset (or the end). Steps no annotation covers
/// are unlabelled. The subject is the first word of the patient field (EDF+'s patient code) unless
/// it is empty or `X`.
///
/// # Errors
/// [`SeriesError::ChannelUnknown`] for a name or index that is not an ordinary signal of the file
/// (listing the available ones); [`SeriesError::EdfMixedRates`] when the chosen signals have
/// different sample rates.
pub fn edf_recording(
    file: &EdfFile,
    channels: Option<&[ChannelRef]>,
) -> Result<Recording, SeriesError> {
    let h = &file.header;
    let ordinary: Vec<usize> = (0..h.signals.len())
        .filter(|&s| !h.signals[s].is_annotations())
        .collect();
    let names: Vec<String> = ordinary
        .iter()
        .map(|&s| h.signals[s].label.clone())
        .collect();
    let chosen: Vec<usize> = match channels {
        None => ordinary.clone(),
        Some(refs) => resolve_channels(&names, refs, &file.path.display().to_string())?
            .into_iter()
            .map(|i| ordinary[i])
            .collect(),
    };
    if chosen.is_empty() {
        return Err(SeriesError::ChannelUnknown {
            source_name: file.path.display().to_string(),
            unknown: "(no signals selected)".into(),
            available: names.join(", "),
        });
    }
    let spr = h.signals[chosen[0]].samples_per_record;
    if chosen
        .iter()
        .any(|&s| h.signals[s].samples_per_record != spr)
    {
        let rates: Vec<String> = chosen
            .iter()
            .map(|&s| format!("{} {} Hz", h.signals[s].label, h.rate_hz(s)))
            .collect();
        return Err(SeriesError::EdfMixedRates {
            path: file.path.clone(),
            rates: rates.join(", "),
        });
    }
    let rate = h.rate_hz(chosen[0]);
    let steps = spr * h.records;
    let mut values = Vec::with_capacity(steps * chosen.len());
    for t in 0..steps {
        values.extend(chosen.iter().map(|&s| file.signals[s][t]));
    }
    let mut labels: Vec<Option<String>> = vec![None; steps];
    let mut events: Vec<&Annotation> = file.annotations.iter().collect();
    events.sort_by(|a, b| a.onset.total_cmp(&b.onset));
    for (k, a) in events.iter().enumerate() {
        let end = match a.duration {
            Some(d) if d > 0.0 => a.onset + d,
            _ => events.get(k + 1).map_or(f64::INFINITY, |n| n.onset),
        };
        let first = (a.onset * rate).ceil().max(0.0) as usize;
        let last = ((end * rate).ceil().max(0.0) as usize).min(steps);
        for l in labels.iter_mut().take(last).skip(first) {
            *l = Some(a.text.clone());
        }
    }
    let subject = h
        .patient
        .split_whitespace()
        .next()
        .filter(|w| *w != "X")
        .map(str::to_string);
    Ok(Recording {
        source: file.path.clone(),
        channels: chosen.iter().map(|&s| h.signals[s].label.clone()).collect(),
        rate_hz: Some(rate),
        values,
        labels: RecordingLabels::PerStep(labels),
        subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signal for the test writer: digital samples (all records), header fields.
    struct Sig {
        label: &'static str,
        spr: usize,
        dig: (i32, i32),
        phys: (f64, f64),
        samples: Vec<i32>,
    }

    /// The test oracle: writes an EDF/BDF(+) file. `annotations[r]` holds the event TALs of record
    /// `r` (written after its time-keeping TAL) when `ann_bytes > 0`.
    fn write_edf(
        kind: EdfKind,
        sigs: &[Sig],
        records: usize,
        duration: f64,
        ann_bytes: usize,
        annotations: &[Vec<(f64, Option<f64>, &str)>],
    ) -> Vec<u8> {
        let sb = kind.sample_bytes();
        let ns = sigs.len() + usize::from(ann_bytes > 0);
        let mut h = Vec::new();
        let put = |h: &mut Vec<u8>, s: &str, len: usize| {
            let mut b = s.as_bytes().to_vec();
            b.resize(len, b' ');
            h.extend(b);
        };
        match kind {
            EdfKind::Edf => put(&mut h, "0", 8),
            EdfKind::Bdf => {
                h.push(0xff);
                put(&mut h, "BIOSEMI", 7);
            }
        }
        put(&mut h, "S001 M 01-JAN-1970 Test", 80);
        put(&mut h, "Startdate 01-JAN-2009 X X X", 80);
        put(&mut h, "01.01.09", 8);
        put(&mut h, "12.00.00", 8);
        put(&mut h, &(256 * (ns + 1)).to_string(), 8);
        let reserved = match (kind, ann_bytes > 0) {
            (EdfKind::Edf, true) => "EDF+C",
            (EdfKind::Bdf, true) => "BDF+C",
            (EdfKind::Edf, false) => "",
            (EdfKind::Bdf, false) => "24BIT",
        };
        put(&mut h, reserved, 44);
        put(&mut h, &records.to_string(), 8);
        put(&mut h, &duration.to_string(), 8);
        put(&mut h, &ns.to_string(), 4);
        let ann_label = if kind == EdfKind::Edf {
            "EDF Annotations"
        } else {
            "BDF Annotations"
        };
        let ann_spr = ann_bytes.div_ceil(sb);
        let lim = if kind == EdfKind::Edf {
            (-32768, 32767)
        } else {
            (-8388608, 8388607)
        };
        let mut rows: Vec<(String, String, String, String, String, String, usize)> = sigs
            .iter()
            .map(|s| {
                (
                    s.label.to_string(),
                    "uV".to_string(),
                    s.phys.0.to_string(),
                    s.phys.1.to_string(),
                    s.dig.0.to_string(),
                    s.dig.1.to_string(),
                    s.spr,
                )
            })
            .collect();
        if ann_bytes > 0 {
            rows.push((
                ann_label.into(),
                String::new(),
                "-1".into(),
                "1".into(),
                lim.0.to_string(),
                lim.1.to_string(),
                ann_spr,
            ));
        }
        for r in &rows {
            put(&mut h, &r.0, 16);
        }
        for _ in &rows {
            put(&mut h, "", 80);
        }
        for r in &rows {
            put(&mut h, &r.1, 8);
        }
        for r in &rows {
            put(&mut h, &r.2, 8);
        }
        for r in &rows {
            put(&mut h, &r.3, 8);
        }
        for r in &rows {
            put(&mut h, &r.4, 8);
        }
        for r in &rows {
            put(&mut h, &r.5, 8);
        }
        for _ in &rows {
            put(&mut h, "", 80);
        }
        for r in &rows {
            put(&mut h, &r.6.to_string(), 8);
        }
        for _ in &rows {
            put(&mut h, "", 32);
        }
        for r in 0..records {
            for s in sigs {
                for &d in &s.samples[r * s.spr..(r + 1) * s.spr] {
                    h.extend(&d.to_le_bytes()[..sb]);
                }
            }
            if ann_bytes > 0 {
                let mut a = format!("+{}\x14\x14\0", r as f64 * duration).into_bytes();
                for (onset, dur, text) in annotations.get(r).into_iter().flatten() {
                    a.extend(format!("+{onset}").bytes());
                    if let Some(d) = dur {
                        a.extend(format!("\x15{d}").bytes());
                    }
                    a.extend(format!("\x14{text}\x14\0").bytes());
                }
                assert!(a.len() <= ann_spr * sb, "annotation bytes too small");
                a.resize(ann_spr * sb, 0);
                h.extend(a);
            }
        }
        h
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn two_signals(kind: EdfKind, records: usize) -> Vec<Sig> {
        let (lo, hi) = if kind == EdfKind::Edf {
            (-32768, 32767)
        } else {
            (-8388608, 8388607)
        };
        vec![
            Sig {
                label: "C3",
                spr: 4,
                dig: (lo, hi),
                phys: (-100.0, 100.0),
                samples: (0..4 * records as i32).map(|i| lo + i * 1000).collect(),
            },
            Sig {
                label: "C4",
                spr: 4,
                dig: (-100, 100),
                phys: (0.0, 2.0),
                samples: (0..4 * records as i32).map(|i| i - 5).collect(),
            },
        ]
    }

    fn phys(d: i32, dig: (i32, i32), p: (f64, f64)) -> f32 {
        ((f64::from(d) - f64::from(dig.0)) * (p.1 - p.0) / f64::from(dig.1 - dig.0) + p.0) as f32
    }

    #[test]
    fn round_trip_edf_and_bdf_with_annotations() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [EdfKind::Edf, EdfKind::Bdf] {
            let sigs = two_signals(kind, 3);
            // 3 records of 1 s at 4 Hz; T0 for 1 s from 0, T1 from 1.5 s with no duration, T2 at 2.5 s for 0.25 s.
            let ann = vec![
                vec![(0.0, Some(1.0), "T0")],
                vec![(1.5, None, "T1")],
                vec![(2.5, Some(0.25), "T2")],
            ];
            let bytes = write_edf(kind, &sigs, 3, 1.0, 60, &ann);
            let p = write(dir.path(), "rec.edf", &bytes);
            let f = read_edf(&p).unwrap();
            assert_eq!(f.header.kind, kind);
            assert_eq!(f.header.records, 3);
            assert_eq!(f.header.signals.len(), 3);
            assert_eq!(f.header.rate_hz(0), 4.0);
            for (s, sig) in sigs.iter().enumerate() {
                let want: Vec<f32> = sig
                    .samples
                    .iter()
                    .map(|&d| phys(d, sig.dig, sig.phys))
                    .collect();
                assert_eq!(f.signals[s], want, "{kind:?} signal {s}");
            }
            assert!(f.signals[2].is_empty());
            assert_eq!(
                f.annotations,
                [
                    Annotation {
                        onset: 0.0,
                        duration: Some(1.0),
                        text: "T0".into()
                    },
                    Annotation {
                        onset: 1.5,
                        duration: None,
                        text: "T1".into()
                    },
                    Annotation {
                        onset: 2.5,
                        duration: Some(0.25),
                        text: "T2".into()
                    },
                ]
            );
            let r = edf_recording(&f, None).unwrap();
            assert_eq!(r.channels, ["C3", "C4"]);
            assert_eq!(r.rate_hz, Some(4.0));
            assert_eq!(r.subject.as_deref(), Some("S001"));
            assert_eq!(r.steps(), 12);
            assert_eq!(
                r.values[2],
                phys(sigs[0].samples[1], sigs[0].dig, sigs[0].phys)
            );
            assert_eq!(
                r.values[3],
                phys(sigs[1].samples[1], sigs[1].dig, sigs[1].phys)
            );
            let labels: Vec<Option<&str>> = (0..12).map(|t| r.label_at(t)).collect();
            let (t0, t1, t2) = (Some("T0"), Some("T1"), Some("T2"));
            assert_eq!(
                labels,
                [t0, t0, t0, t0, None, None, t1, t1, t1, t1, t2, None]
            );
            let only_c4 = edf_recording(&f, Some(&[ChannelRef::from("C4")])).unwrap();
            assert_eq!(only_c4.channels, ["C4"]);
            assert_eq!(only_c4.channel(0), f.signals[1]);
        }
    }

    #[test]
    fn bdf_sign_extension_and_record_count_minus_one() {
        let dir = tempfile::tempdir().unwrap();
        let sig = Sig {
            label: "A",
            spr: 2,
            dig: (-8388608, 8388607),
            phys: (-8388608.0, 8388607.0),
            samples: vec![-1, -8388608, 8388607, 5],
        };
        let mut bytes = write_edf(EdfKind::Bdf, &[sig], 2, 0.5, 0, &[]);
        bytes[236..244].copy_from_slice(b"-1      ");
        let p = write(dir.path(), "a.bdf", &bytes);
        let f = read_edf(&p).unwrap();
        assert_eq!(f.header.records, 2);
        assert_eq!(f.signals[0], [-1.0, -8388608.0, 8388607.0, 5.0]);
        assert_eq!(f.header.rate_hz(0), 4.0);
    }

    #[test]
    fn mixed_rates_and_unknown_channels() {
        let dir = tempfile::tempdir().unwrap();
        let mut sigs = two_signals(EdfKind::Edf, 2);
        sigs[1].spr = 2;
        sigs[1].samples.truncate(4);
        let p = write(
            dir.path(),
            "m.edf",
            &write_edf(EdfKind::Edf, &sigs, 2, 1.0, 0, &[]),
        );
        let f = read_edf(&p).unwrap();
        let e = edf_recording(&f, None).unwrap_err().to_string();
        assert!(e.contains("m.edf") && e.contains("C3 4 Hz, C4 2 Hz"), "{e}");
        assert_eq!(
            edf_recording(&f, Some(&[1.into()])).unwrap().rate_hz,
            Some(2.0)
        );
        let e = edf_recording(&f, Some(&["Cz".into(), 7.into()]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"Cz\", 7") && e.contains("available: 0: C3, 1: C4") && e.contains("m.edf"),
            "{e}"
        );
    }

    fn fails(bytes: &[u8], needle: &str) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "bad.edf", bytes);
        let msg = read_edf(&p).unwrap_err().to_string();
        assert!(
            msg.contains(&p.display().to_string()),
            "{msg:?} should name the file"
        );
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }

    #[test]
    fn malformed_files_name_file_and_record() {
        let good = write_edf(
            EdfKind::Edf,
            &two_signals(EdfKind::Edf, 3),
            3,
            1.0,
            40,
            &[vec![], vec![(1.0, None, "T1")]],
        );
        let record_bytes = (4 + 4) * 2 + 40;
        fails(&good[..100], "shorter than the 256-byte fixed header");
        fails(
            &good[..500],
            "shorter than the 1024-byte header of 3 signals",
        );
        // Truncated in the middle of record 2.
        fails(
            &good[..good.len() - 10],
            "data record 2: truncated: the header promises 3 records",
        );
        let _ = record_bytes;
        let mut b = good.clone();
        b[..8].copy_from_slice(b"1       ");
        fails(&b, "version field");
        let mut b = good.clone();
        b[184..192].copy_from_slice(b"999     ");
        fails(&b, "header size field says 999 bytes, 3 signals need 1024");
        let mut b = good.clone();
        b[244..252].copy_from_slice(b"abc     ");
        fails(&b, "record duration field \"abc\" is not a number");
        let mut b = good.clone();
        b[192..197].copy_from_slice(b"EDF+D");
        fails(&b, "discontinuous");
        // Signal 1's digital minimum (field block at 256 + 3*(16+80+8+8+8) = 616, 8 bytes each).
        let mut b = good.clone();
        b[616 + 8..616 + 16].copy_from_slice(b"xyz     ");
        fails(&b, "signal 1 (\"C4\") digital minimum field \"xyz\"");
        let mut b = good.clone();
        b[616 + 8..616 + 16].copy_from_slice(b"200     ");
        fails(&b, "signal 1 (\"C4\"): digital minimum 200 and maximum 100");
        // A malformed TAL in record 1: replace its onset sign.
        let mut b = good.clone();
        let ann_start = 1024 + record_bytes + 16;
        let tal = b[ann_start..].iter().position(|&x| x == 0).unwrap() + ann_start + 1;
        b[tal] = b'x';
        fails(
            &b,
            "data record 1: signal 2 (\"EDF Annotations\"): TAL 1: onset",
        );
    }
}
