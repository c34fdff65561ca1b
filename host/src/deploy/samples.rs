//! Sample sets: the int8 inputs and labels that a blob is run over, and their `.tks` file form
//! (SPEC §7), which the board firmware streams one sample at a time.

use std::path::Path;

use super::{DeployError, Result};

/// `n` quantized samples of `sample_len` int8 values each, with one label per sample.
///
/// The inputs are already quantized with the model's input `Quant` (SPEC §4): this is exactly
/// what the device sees, so a host run and a board run of the same set are comparable byte for
/// byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleSet {
    sample_len: usize,
    inputs: Vec<i8>,
    labels: Vec<u8>,
}

impl SampleSet {
    /// Builds a set from `labels.len()` samples laid end to end in `inputs`.
    ///
    /// Fails if `sample_len` is 0, if `inputs` does not hold exactly one sample per label, or if
    /// the set is too large for the `.tks` header's `u32` fields.
    pub fn new(sample_len: usize, inputs: Vec<i8>, labels: Vec<u8>) -> Result<Self> {
        if sample_len == 0 {
            return Err(DeployError::SamplesBadShape(
                "the sample length is 0".to_string(),
            ));
        }
        if Some(inputs.len()) != labels.len().checked_mul(sample_len) {
            return Err(DeployError::SamplesBadShape(format!(
                "{} input values are not {} samples of {} values",
                inputs.len(),
                labels.len(),
                sample_len
            )));
        }
        if u32::try_from(sample_len).is_err() || u32::try_from(labels.len()).is_err() {
            return Err(DeployError::SamplesBadShape(format!(
                "{} samples of {} values do not fit a .tks header",
                labels.len(),
                sample_len
            )));
        }
        Ok(Self {
            sample_len,
            inputs,
            labels,
        })
    }

    /// An empty set for a model with `sample_len` inputs: running it measures everything but
    /// the inferences (boot, loading the blob), see [`super::count_instructions`].
    pub fn empty(sample_len: usize) -> Result<Self> {
        Self::new(sample_len, Vec::new(), Vec::new())
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// int8 values per sample (the model's input length).
    pub fn sample_len(&self) -> usize {
        self.sample_len
    }

    /// The input of sample `i`, or `None` past the end.
    pub fn input(&self, i: usize) -> Option<&[i8]> {
        let start = i.checked_mul(self.sample_len)?;
        self.inputs.get(start..start.checked_add(self.sample_len)?)
    }

    /// All labels, one per sample.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Iterates over `(input, label)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[i8], u8)> + '_ {
        self.inputs
            .chunks_exact(self.sample_len)
            .zip(self.labels.iter().copied())
    }

    /// The `.tks` bytes: `b"TKS1" | n: u32 LE | sample_len: u32 LE | inputs | labels`,
    /// written by `tinykd-format`, the one implementation of SPEC §7.
    pub fn to_tks_bytes(&self) -> Vec<u8> {
        // `new` checked the lengths against each other and against u32, which is all that
        // `to_vec` checks.
        tinykd_format::samples::to_vec(self.sample_len, &self.inputs, &self.labels)
            .unwrap_or_default()
    }

    /// Parses `.tks` bytes, refusing a wrong magic, a truncated file or trailing bytes.
    pub fn from_tks_bytes(bytes: &[u8]) -> Result<Self> {
        let set = tinykd_format::samples::SampleSet::from_bytes(bytes)
            .map_err(DeployError::SamplesBadFile)?;
        let sample_len = set.header().sample_len as usize;
        let mut inputs = Vec::with_capacity(set.len() * sample_len);
        let mut labels = Vec::with_capacity(set.len());
        for (input, label) in set.iter() {
            inputs.extend_from_slice(input);
            labels.push(label);
        }
        Self::new(sample_len, inputs, labels)
    }

    /// Writes the set as a `.tks` file.
    pub fn write_tks(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_tks_bytes()).map_err(|source| DeployError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a `.tks` file.
    pub fn read_tks(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| DeployError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_tks_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tks_bytes_are_pinned_and_round_trip() {
        let set = SampleSet::new(3, vec![1, -1, 127, -128, 0, 5], vec![7, 2]).unwrap();
        let bytes = set.to_tks_bytes();
        assert_eq!(
            bytes,
            [
                b'T', b'K', b'S', b'1', 2, 0, 0, 0, 3, 0, 0, 0, // header
                1, 0xff, 127, 0x80, 0, 5, // inputs
                7, 2, // labels
            ]
        );
        assert_eq!(SampleSet::from_tks_bytes(&bytes).unwrap(), set);
        assert_eq!(set.input(1), Some(&[-128i8, 0, 5][..]));
        assert_eq!(set.input(2), None);
    }

    #[test]
    fn bad_tks_files_are_refused() {
        let good = SampleSet::new(2, vec![1, 2], vec![0])
            .unwrap()
            .to_tks_bytes();
        let mut bad_magic = good.clone();
        bad_magic[3] = b'2';
        assert!(matches!(
            SampleSet::from_tks_bytes(&bad_magic),
            Err(DeployError::SamplesBadFile(_))
        ));
        for len in 0..good.len() {
            assert!(
                SampleSet::from_tks_bytes(&good[..len]).is_err(),
                "truncated at {len}"
            );
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(SampleSet::from_tks_bytes(&trailing).is_err());
    }

    #[test]
    fn inconsistent_shapes_are_refused() {
        assert!(SampleSet::new(0, vec![], vec![]).is_err());
        assert!(SampleSet::new(2, vec![1, 2, 3], vec![0]).is_err());
        assert!(SampleSet::empty(4).unwrap().is_empty());
    }
}
