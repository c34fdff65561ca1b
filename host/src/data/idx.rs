//! The IDX file format of MNIST and Fashion-MNIST, plain or gzip-compressed.
//!
//! An IDX file is a 4-byte magic (`0x00 0x00 <type> <rank>`), `rank` big-endian `u32` dimensions,
//! then the elements in row-major order. MNIST and Fashion-MNIST only use unsigned bytes (type
//! `0x08`): rank 3 (`[n, rows, cols]`) for images and rank 1 (`[n]`) for labels. The reader checks
//! every one of those facts and the exact byte count, so a truncated download or a swapped file is
//! an error naming the file rather than a silently wrong tensor.
//!
//! Compression is detected from the gzip magic bytes, not from the file name.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::DataError;

/// The IDX type code for unsigned bytes, the only element type MNIST-style datasets use.
const IDX_TYPE_U8: u8 = 0x08;
/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (`[n, rows, cols]` for images, `[n]` for labels).
    pub dims: Vec<usize>,
    /// The elements in row-major order; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Reads the whole file at `path`, gunzipping it when it starts with the gzip magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|source| DataError::Decompress {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads an IDX file of unsigned bytes with exactly `expected_rank` dimensions.
///
/// # Errors
/// [`DataError::Io`] and [`DataError::Decompress`] for unreadable files, and
/// [`DataError::IdxHeader`] / [`DataError::IdxTruncated`] / [`DataError::IdxTrailing`] for files
/// that are not a well-formed IDX array of that rank; each names `path`.
pub fn read_idx_u8(path: &Path, expected_rank: usize) -> Result<IdxArray, DataError> {
    let bytes = read_maybe_gz(path)?;
    parse_idx_u8(&bytes, expected_rank, path)
}

/// Parses IDX bytes already in memory; `path` only labels the errors.
///
/// # Errors
/// As [`read_idx_u8`], minus the I/O errors.
pub fn parse_idx_u8(
    bytes: &[u8],
    expected_rank: usize,
    path: &Path,
) -> Result<IdxArray, DataError> {
    let header_err = |reason: String| DataError::IdxHeader {
        path: PathBuf::from(path),
        reason,
    };
    let Some(magic) = bytes.get(..4) else {
        return Err(header_err(format!(
            "file has {} bytes, shorter than the 4-byte IDX magic",
            bytes.len()
        )));
    };
    if magic[0] != 0 || magic[1] != 0 {
        return Err(header_err(format!(
            "bad magic {:02x} {:02x} {:02x} {:02x} (an IDX file starts with 00 00)",
            magic[0], magic[1], magic[2], magic[3]
        )));
    }
    if magic[2] != IDX_TYPE_U8 {
        return Err(header_err(format!(
            "element type 0x{:02x}, expected 0x08 (unsigned byte)",
            magic[2]
        )));
    }
    let rank = usize::from(magic[3]);
    if rank != expected_rank {
        return Err(header_err(format!(
            "{rank} dimensions, expected {expected_rank}"
        )));
    }
    let header_len = 4 + 4 * rank;
    let Some(dim_bytes) = bytes.get(4..header_len) else {
        return Err(header_err(format!(
            "file has {} bytes, shorter than its {header_len}-byte header",
            bytes.len()
        )));
    };
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| header_err(format!("dimensions {dims:?} overflow")))?;
    let body = &bytes[header_len..];
    if body.len() < expected {
        return Err(DataError::IdxTruncated {
            path: path.to_path_buf(),
            expected,
            found: body.len(),
        });
    }
    if body.len() > expected {
        return Err(DataError::IdxTrailing {
            path: path.to_path_buf(),
            extra: body.len() - expected,
        });
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Encodes `data` with `dims` as IDX unsigned bytes: the inverse of [`parse_idx_u8`], used by
/// tests and by tools that write small datasets.
pub fn encode_idx_u8(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, IDX_TYPE_U8, dims.len() as u8]);
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("x.idx")
    }

    #[test]
    fn round_trips() {
        let bytes = encode_idx_u8(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&bytes[..4], &[0, 0, 8, 2]);
        let a = parse_idx_u8(&bytes, 2, p()).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn rejects_each_header_fault() {
        let good = encode_idx_u8(&[2, 3], &[0; 6]);
        assert!(matches!(
            parse_idx_u8(&good[..3], 2, p()),
            Err(DataError::IdxHeader { .. })
        ));
        let mut bad_magic = good.clone();
        bad_magic[0] = 1;
        assert!(matches!(
            parse_idx_u8(&bad_magic, 2, p()),
            Err(DataError::IdxHeader { .. })
        ));
        let mut bad_type = good.clone();
        bad_type[2] = 0x0d; // float
        assert!(matches!(
            parse_idx_u8(&bad_type, 2, p()),
            Err(DataError::IdxHeader { .. })
        ));
        assert!(matches!(
            parse_idx_u8(&good, 3, p()),
            Err(DataError::IdxHeader { .. })
        ));
        assert!(matches!(
            parse_idx_u8(&good[..9], 2, p()),
            Err(DataError::IdxHeader { .. })
        ));
    }

    #[test]
    fn rejects_short_and_long_bodies() {
        let good = encode_idx_u8(&[2, 3], &[0; 6]);
        match parse_idx_u8(&good[..good.len() - 1], 2, p()) {
            Err(DataError::IdxTruncated {
                expected: 6,
                found: 5,
                ..
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            parse_idx_u8(&long, 2, p()),
            Err(DataError::IdxTrailing { extra: 1, .. })
        ));
    }
}
