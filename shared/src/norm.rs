//! The optional per-channel input normalisation of format 1.3 (SPEC §5.2).
//!
//! A sensor node reads physical values (an accelerometer in g, an EEG electrode in µV); the model
//! was trained on `(x − mean) / std` per channel, with the statistics of the training split. The
//! blob can carry those `(mean, std)` pairs, so the device normalises exactly as the host did
//! before quantizing with the input tensor's scale and zero point, and no constant is copied by
//! hand into firmware. Stored after the scratch table as one postcard byte string of `8·C` bytes:
//! per input channel `mean: f32 LE`, `std: f32 LE`. Validation requires `C` = the input tensor's
//! channels, every mean finite and every std finite and positive.
//!
//! ```
//! use tinykd_format::InputNorm;
//! let bytes = [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]; // mean 1.0, std 2.0
//! let norm = InputNorm::new(&bytes, 1).unwrap();
//! assert_eq!(norm.get(0), Some((1.0, 2.0)));
//! assert_eq!(norm.normalize(0, 5.0), Some(2.0)); // (5 − 1) / 2
//! assert_eq!(InputNorm::new(&bytes, 2).unwrap_err(), tinykd_format::Error::InputNormBadCount);
//! ```

use crate::{Error, Result};

/// Bytes per channel: `mean: f32 LE`, `std: f32 LE`.
pub const INPUT_NORM_RECORD_LEN: usize = 8;

/// A checked, borrowed view of the per-channel `(mean, std)` pairs of a model's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InputNorm<'a> {
    bytes: &'a [u8],
}

impl<'a> InputNorm<'a> {
    /// Checks `bytes` (8 per channel) against the input's `channels`: the count, every mean
    /// finite, every std finite and `> 0`. Hostile values are errors, never panics.
    ///
    /// ```
    /// use tinykd_format::{Error, InputNorm};
    /// let nan = f32::NAN.to_le_bytes();
    /// let bad = [0, 0, 0, 0, nan[0], nan[1], nan[2], nan[3]];
    /// assert_eq!(InputNorm::new(&bad, 1).unwrap_err(), Error::InputNormBadValue);
    /// assert_eq!(InputNorm::new(&[0; 8], 1).unwrap_err(), Error::InputNormBadValue); // std 0
    /// assert_eq!(InputNorm::new(&[0; 7], 1).unwrap_err(), Error::InputNormBadCount);
    /// ```
    pub fn new(bytes: &'a [u8], channels: usize) -> Result<InputNorm<'a>> {
        if !bytes.len().is_multiple_of(INPUT_NORM_RECORD_LEN)
            || bytes.len() / INPUT_NORM_RECORD_LEN != channels
        {
            return Err(Error::InputNormBadCount);
        }
        let norm = InputNorm { bytes };
        if !norm
            .iter()
            .all(|(m, s)| m.is_finite() && s.is_finite() && s > 0.0)
        {
            return Err(Error::InputNormBadValue);
        }
        Ok(norm)
    }

    /// Number of channels.
    pub const fn len(&self) -> usize {
        self.bytes.len() / INPUT_NORM_RECORD_LEN
    }

    /// True if there are no channels (never for a validated blob's normalisation).
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(mean, std)` of channel `c`, or `None` past the end.
    pub fn get(&self, c: usize) -> Option<(f32, f32)> {
        let start = c.checked_mul(INPUT_NORM_RECORD_LEN)?;
        let r = self
            .bytes
            .get(start..start.checked_add(INPUT_NORM_RECORD_LEN)?)?;
        let (m, s) = r.split_first_chunk::<4>()?;
        let s: [u8; 4] = s.try_into().ok()?;
        Some((f32::from_le_bytes(*m), f32::from_le_bytes(s)))
    }

    /// `(value − mean) / std` for channel `c`, or `None` past the end.
    #[inline]
    pub fn normalize(&self, c: usize, value: f32) -> Option<f32> {
        self.get(c).map(|(m, s)| (value - m) / s)
    }

    /// The pairs in channel order.
    pub fn iter(&self) -> impl Iterator<Item = (f32, f32)> + 'a {
        let this = *self;
        (0..self.len()).filter_map(move |c| this.get(c))
    }

    /// The stored bytes (8 per channel).
    pub const fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// The stored bytes of `pairs` (no checks; see [`InputNorm::new`]).
#[cfg(any(test, feature = "alloc"))]
pub(crate) fn encode(pairs: &[(f32, f32)]) -> alloc::vec::Vec<u8> {
    pairs
        .iter()
        .flat_map(|&(m, s)| m.to_le_bytes().into_iter().chain(s.to_le_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_hostile_values() {
        let pairs = [(0.5f32, 0.25f32), (-9.81, 3.0), (0.0, 1e-6)];
        let b = encode(&pairs);
        assert_eq!(&b[..8], &[0, 0, 0, 0x3f, 0, 0, 0x80, 0x3e]);
        let n = InputNorm::new(&b, 3).unwrap();
        assert_eq!(n.iter().collect::<std::vec::Vec<_>>(), pairs);
        assert_eq!(n.get(3), None);
        assert_eq!(n.normalize(0, 1.0), Some(2.0));
        for bad in [
            (f32::NAN, 1.0),
            (f32::INFINITY, 1.0),
            (0.0, 0.0),
            (0.0, -1.0),
            (0.0, f32::NAN),
            (0.0, f32::INFINITY),
            (0.0, -0.0),
        ] {
            let b = encode(&[(1.0, 1.0), bad]);
            assert_eq!(
                InputNorm::new(&b, 2),
                Err(Error::InputNormBadValue),
                "{bad:?}"
            );
        }
        assert_eq!(InputNorm::new(&b, 2), Err(Error::InputNormBadCount));
        assert_eq!(InputNorm::new(&b[..23], 3), Err(Error::InputNormBadCount));
        assert_eq!(InputNorm::new(&[], 0).map(|n| n.is_empty()), Ok(true));
    }
}
