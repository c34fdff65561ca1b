//! Sample sets (`.tks`, SPEC §7): int8 inputs and labels for running a test set on a board.
//!
//! ```text
//! b"TKS1" | n: u32 LE | sample_len: u32 LE | n·sample_len int8 inputs | n u8 labels
//! ```
//!
//! The header says where every sample and label sits, so firmware can stream one sample at a time
//! (semihosting reads, external flash) and RAM does not grow with `n`; [`SampleSet`] is the
//! in-memory view for when the whole file is mapped.
//!
//! ```
//! use tinykd_format::samples::{SampleSet, SampleSetHeader};
//! let file = [b'T', b'K', b'S', b'1', 2, 0, 0, 0, 3, 0, 0, 0,
//!             1, 2, 3, 0xff, 0xfe, 0xfd, // two samples of 3 values
//!             7, 9];                     // their labels
//! let header = SampleSetHeader::parse(&file).unwrap();
//! assert_eq!((header.count, header.sample_len), (2, 3));
//! assert_eq!(header.sample_range(1), Some(15..18));
//! assert_eq!(header.label_offset(1), Some(19));
//! let set = SampleSet::from_bytes(&file).unwrap();
//! assert_eq!(set.get(1), Some((&[-1i8, -2, -3][..], 9)));
//! ```

use core::ops::Range;

use crate::{Error, Result};

/// The first four bytes of a sample set.
pub const SAMPLES_MAGIC: [u8; 4] = *b"TKS1";
/// Length of the sample-set header.
pub const SAMPLES_HEADER_LEN: usize = 12;

/// The decoded header of a sample set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SampleSetHeader {
    /// Number of samples.
    pub count: u32,
    /// Length of one input in bytes (the model's `input_len`).
    pub sample_len: u32,
}

impl SampleSetHeader {
    /// Parses the 12-byte header at the start of `bytes` (the rest need not be present).
    pub fn parse(bytes: &[u8]) -> Result<SampleSetHeader> {
        let Some(&[m0, m1, m2, m3, n0, n1, n2, n3, l0, l1, l2, l3]) =
            bytes.first_chunk::<SAMPLES_HEADER_LEN>()
        else {
            return Err(Error::SamplesBadLength);
        };
        if [m0, m1, m2, m3] != SAMPLES_MAGIC {
            return Err(Error::SamplesBadMagic);
        }
        Ok(SampleSetHeader {
            count: u32::from_le_bytes([n0, n1, n2, n3]),
            sample_len: u32::from_le_bytes([l0, l1, l2, l3]),
        })
    }

    /// The 12 header bytes.
    ///
    /// ```
    /// use tinykd_format::samples::SampleSetHeader;
    /// let h = SampleSetHeader { count: 2, sample_len: 784 };
    /// assert_eq!(h.encode(), *b"TKS1\x02\0\0\0\x10\x03\0\0");
    /// ```
    pub fn encode(&self) -> [u8; SAMPLES_HEADER_LEN] {
        let n = self.count.to_le_bytes();
        let l = self.sample_len.to_le_bytes();
        let m = SAMPLES_MAGIC;
        [
            m[0], m[1], m[2], m[3], n[0], n[1], n[2], n[3], l[0], l[1], l[2], l[3],
        ]
    }

    /// Total file length `12 + n·(sample_len + 1)`, or `None` if it overflows `usize`.
    pub fn total_len(&self) -> Option<usize> {
        let n = usize::try_from(self.count).ok()?;
        let per = usize::try_from(self.sample_len).ok()?.checked_add(1)?;
        n.checked_mul(per)?.checked_add(SAMPLES_HEADER_LEN)
    }

    /// Byte range of sample `i`'s input in the file, or `None` if `i ≥ count` or on overflow.
    pub fn sample_range(&self, i: u32) -> Option<Range<usize>> {
        if i >= self.count {
            return None;
        }
        let len = usize::try_from(self.sample_len).ok()?;
        let start = usize::try_from(i)
            .ok()?
            .checked_mul(len)?
            .checked_add(SAMPLES_HEADER_LEN)?;
        Some(start..start.checked_add(len)?)
    }

    /// Byte offset of sample `i`'s label in the file, or `None` if `i ≥ count` or on overflow.
    pub fn label_offset(&self, i: u32) -> Option<usize> {
        if i >= self.count {
            return None;
        }
        let inputs = usize::try_from(self.count)
            .ok()?
            .checked_mul(usize::try_from(self.sample_len).ok()?)?;
        SAMPLES_HEADER_LEN
            .checked_add(inputs)?
            .checked_add(usize::try_from(i).ok()?)
    }
}

/// A whole sample set in memory, checked against its header.
#[derive(Clone, Copy, Debug)]
pub struct SampleSet<'a> {
    header: SampleSetHeader,
    inputs: &'a [u8],
    labels: &'a [u8],
}

impl<'a> SampleSet<'a> {
    /// Checks the header and that `bytes` is exactly as long as it announces.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<SampleSet<'a>> {
        let header = SampleSetHeader::parse(bytes)?;
        if header.total_len() != Some(bytes.len()) {
            return Err(Error::SamplesBadLength);
        }
        let body = bytes
            .get(SAMPLES_HEADER_LEN..)
            .ok_or(Error::SamplesBadLength)?;
        let inputs_len = body.len() - header.count as usize; // total_len() checked it
        let (inputs, labels) = body.split_at(inputs_len);
        Ok(SampleSet {
            header,
            inputs,
            labels,
        })
    }

    /// The header.
    pub const fn header(&self) -> SampleSetHeader {
        self.header
    }

    /// Number of samples.
    pub const fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there are no samples.
    pub const fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Sample `i`: its int8 input and its label, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<(&'a [i8], u8)> {
        let len = self.header.sample_len as usize;
        let start = i.checked_mul(len)?;
        let input = self.inputs.get(start..start.checked_add(len)?)?;
        Some((crate::bytes_as_i8(input), *self.labels.get(i)?))
    }

    /// All samples in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [i8], u8)> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// Writes a sample set: `inputs` holds the samples back to back (`labels.len() · sample_len`
/// values). Fails with [`Error::SamplesBadLength`] if the lengths disagree or overflow `u32`.
///
/// ```
/// use tinykd_format::samples::to_vec;
/// let file = to_vec(2, &[1, -1, 3, 4], &[5, 6]).unwrap();
/// assert_eq!(file, b"TKS1\x02\0\0\0\x02\0\0\0\x01\xff\x03\x04\x05\x06");
/// ```
#[cfg(any(test, feature = "alloc"))]
pub fn to_vec(sample_len: usize, inputs: &[i8], labels: &[u8]) -> Result<alloc::vec::Vec<u8>> {
    let count = labels.len();
    if count.checked_mul(sample_len) != Some(inputs.len()) {
        return Err(Error::SamplesBadLength);
    }
    let header = SampleSetHeader {
        count: u32::try_from(count).map_err(|_| Error::SamplesBadLength)?,
        sample_len: u32::try_from(sample_len).map_err(|_| Error::SamplesBadLength)?,
    };
    let mut out = alloc::vec::Vec::with_capacity(header.total_len().unwrap_or(0));
    out.extend_from_slice(&header.encode());
    out.extend(inputs.iter().map(|&v| v as u8));
    out.extend_from_slice(labels);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_files() {
        assert_eq!(
            SampleSetHeader::parse(b"TKS1\0\0").unwrap_err(),
            Error::SamplesBadLength
        );
        assert_eq!(
            SampleSetHeader::parse(b"TKS2\0\0\0\0\0\0\0\0").unwrap_err(),
            Error::SamplesBadMagic
        );
        let file = to_vec(3, &[1, 2, 3, 4, 5, 6], &[0, 1]).unwrap();
        for cut in 0..file.len() {
            assert!(SampleSet::from_bytes(&file[..cut]).is_err());
        }
        let mut long = file.clone();
        long.push(0);
        assert_eq!(
            SampleSet::from_bytes(&long).unwrap_err(),
            Error::SamplesBadLength
        );
        // A header announcing more than usize can hold.
        let huge = SampleSetHeader {
            count: u32::MAX,
            sample_len: u32::MAX,
        };
        assert!(SampleSet::from_bytes(&huge.encode()).is_err());
        assert_eq!(
            to_vec(3, &[1, 2], &[0]).unwrap_err(),
            Error::SamplesBadLength
        );
    }

    #[test]
    fn round_trips() {
        let inputs: std::vec::Vec<i8> = (0..40).map(|v| (v * 7 - 100) as i8).collect();
        let labels = [3u8, 1, 4, 1, 5];
        let file = to_vec(8, &inputs, &labels).unwrap();
        let set = SampleSet::from_bytes(&file).unwrap();
        assert_eq!(set.len(), 5);
        for (i, (x, y)) in set.iter().enumerate() {
            assert_eq!(x, &inputs[i * 8..i * 8 + 8]);
            assert_eq!(y, labels[i]);
            let h = set.header();
            assert_eq!(
                &file[h.sample_range(i as u32).unwrap()],
                &file[12 + i * 8..20 + i * 8]
            );
            assert_eq!(file[h.label_offset(i as u32).unwrap()], labels[i]);
        }
        assert_eq!(set.get(5), None);
        assert_eq!(set.header().sample_range(5), None);
        assert_eq!(set.header().label_offset(5), None);
    }
}
