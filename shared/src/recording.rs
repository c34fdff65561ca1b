//! Recorded sensor streams (`.tkr`, SPEC §8): raw multichannel samples in time order, for
//! replaying a recording through `tinykd_device::Stream` on the host and on a board.
//!
//! ```text
//! b"TKR1" | steps: u32 LE | channels: u32 LE | steps·channels f32 LE values (time-major)
//!         | steps u8 labels (255 = no label)
//! ```
//!
//! Values are the raw physical readings (e.g. acceleration in g), before the model's input
//! normalisation; the label of a step is the activity at that instant, so a window's label can be
//! taken at its last step.
//!
//! ```
//! use tinykd_format::recording::Recording;
//! let mut file = b"TKR1\x02\0\0\0\x01\0\0\0".to_vec();
//! file.extend_from_slice(&1.5f32.to_le_bytes());
//! file.extend_from_slice(&(-2.0f32).to_le_bytes());
//! file.extend_from_slice(&[3, 255]);
//! let rec = Recording::from_bytes(&file).unwrap();
//! assert_eq!((rec.steps(), rec.channels()), (2, 1));
//! let mut v = [0f32; 1];
//! assert_eq!(rec.step(1, &mut v), Some(None)); // no label
//! assert_eq!(v, [-2.0]);
//! assert_eq!(rec.step(0, &mut v), Some(Some(3)));
//! ```

use crate::{Error, Result};

/// The first four bytes of a recording.
pub const RECORDING_MAGIC: [u8; 4] = *b"TKR1";
/// Length of the recording header.
pub const RECORDING_HEADER_LEN: usize = 12;
/// The label of a step without one.
pub const NO_LABEL: u8 = 255;

/// A whole recording in memory, checked against its header.
#[derive(Clone, Copy, Debug)]
pub struct Recording<'a> {
    steps: u32,
    channels: u32,
    values: &'a [u8],
    labels: &'a [u8],
}

impl<'a> Recording<'a> {
    /// Checks the magic (`SamplesBadMagic`) and that `bytes` is exactly as long as the header
    /// announces (`SamplesBadLength`, also for 0 channels).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Recording<'a>> {
        let Some((head, rest)) = bytes.split_first_chunk::<RECORDING_HEADER_LEN>() else {
            return Err(Error::SamplesBadLength);
        };
        let [m0, m1, m2, m3, s0, s1, s2, s3, c0, c1, c2, c3] = *head;
        if [m0, m1, m2, m3] != RECORDING_MAGIC {
            return Err(Error::SamplesBadMagic);
        }
        let steps = u32::from_le_bytes([s0, s1, s2, s3]);
        let channels = u32::from_le_bytes([c0, c1, c2, c3]);
        let n_values = usize::try_from(steps)
            .ok()
            .and_then(|s| s.checked_mul(usize::try_from(channels).ok()?))
            .and_then(|n| n.checked_mul(4))
            .ok_or(Error::SamplesBadLength)?;
        let total =
            n_values.checked_add(usize::try_from(steps).map_err(|_| Error::SamplesBadLength)?);
        if channels == 0 || total != Some(rest.len()) {
            return Err(Error::SamplesBadLength);
        }
        let (values, labels) = rest.split_at(n_values);
        Ok(Recording {
            steps,
            channels,
            values,
            labels,
        })
    }

    /// Number of time steps.
    pub const fn steps(&self) -> u32 {
        self.steps
    }

    /// Values per step.
    pub const fn channels(&self) -> u32 {
        self.channels
    }

    /// Writes step `i`'s values into `out` (one per channel) and returns its label (`None`
    /// for [`NO_LABEL`]); `None` if `i ≥ steps` or `out` is not one value per channel.
    pub fn step(&self, i: u32, out: &mut [f32]) -> Option<Option<u8>> {
        let c = usize::try_from(self.channels).ok()?;
        if i >= self.steps || out.len() != c {
            return None;
        }
        let start = usize::try_from(i).ok()?.checked_mul(c)?.checked_mul(4)?;
        let bytes = self
            .values
            .get(start..start.checked_add(c.checked_mul(4)?)?)?;
        for (dst, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            let w: [u8; 4] = b.try_into().ok()?;
            *dst = f32::from_le_bytes(w);
        }
        let label = *self.labels.get(usize::try_from(i).ok()?)?;
        Some((label != NO_LABEL).then_some(label))
    }
}

/// Encodes a recording: `values` holds `steps·channels` values, time-major; `labels` one per
/// step (or is empty: no labels). `None` if the lengths disagree.
///
/// ```
/// use tinykd_format::recording::{encode, Recording};
/// let file = encode(1, &[0.5, 1.0], &[2, 255]).unwrap();
/// assert_eq!(&file[..12], b"TKR1\x02\0\0\0\x01\0\0\0");
/// assert_eq!(Recording::from_bytes(&file).unwrap().steps(), 2);
/// assert_eq!(encode(2, &[0.5], &[]), None);
/// ```
#[cfg(any(test, feature = "alloc"))]
pub fn encode(channels: u32, values: &[f32], labels: &[u8]) -> Option<alloc::vec::Vec<u8>> {
    let c = usize::try_from(channels).ok().filter(|&c| c > 0)?;
    if !values.len().is_multiple_of(c) {
        return None;
    }
    let steps = values.len() / c;
    if !labels.is_empty() && labels.len() != steps {
        return None;
    }
    let mut out = alloc::vec::Vec::with_capacity(RECORDING_HEADER_LEN + values.len() * 4 + steps);
    out.extend_from_slice(&RECORDING_MAGIC);
    out.extend_from_slice(&u32::try_from(steps).ok()?.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    if labels.is_empty() {
        out.resize(out.len() + steps, NO_LABEL);
    } else {
        out.extend_from_slice(labels);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncations_and_bad_headers_are_errors() {
        let file = encode(3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[0, 1]).unwrap();
        assert!(Recording::from_bytes(&file).is_ok());
        for n in 0..file.len() {
            assert!(Recording::from_bytes(&file[..n]).is_err(), "{n}");
        }
        let mut long = file.clone();
        long.push(0);
        assert_eq!(
            Recording::from_bytes(&long).unwrap_err(),
            Error::SamplesBadLength
        );
        let mut bad = file.clone();
        bad[3] = b'2';
        assert_eq!(
            Recording::from_bytes(&bad).unwrap_err(),
            Error::SamplesBadMagic
        );
        let mut huge = file.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Recording::from_bytes(&huge).unwrap_err(),
            Error::SamplesBadLength
        );
        let zero = b"TKR1\0\0\0\0\0\0\0\0";
        assert_eq!(
            Recording::from_bytes(zero).unwrap_err(),
            Error::SamplesBadLength
        );
        let rec = Recording::from_bytes(&file).unwrap();
        let mut v = [0f32; 3];
        assert_eq!(rec.step(1, &mut v), Some(Some(1)));
        assert_eq!(v, [4.0, 5.0, 6.0]);
        assert_eq!(rec.step(2, &mut v), None);
        assert_eq!(rec.step(0, &mut v[..2]), None);
    }
}
