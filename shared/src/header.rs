//! The fixed 12-byte header and the trailing CRC (SPEC §1).

use crate::{Error, Result};

/// The first three bytes of every blob.
pub const MAGIC: [u8; 3] = *b"TKD";
/// The major format version this crate reads and writes. A blob with another major is refused.
pub const VERSION_MAJOR: u8 = 1;
/// The minor format version this crate writes. Newer minors load (their appended data is skipped).
/// 1.1 appended the scratch table (SPEC §5.1); 1.0 blobs, which lack it, still load. 1.2 added the
/// binary ops and packed tensors (SPEC §3.2); 1.0 and 1.1 blobs load unchanged. 1.3 added the
/// optional per-channel input normalisation (SPEC §5.2); the builder writes 1.3 only for a model
/// that has one, so every other blob keeps the bytes (and minor) it had. 1.4 added the bit-sliced
/// binary convolution (SPEC §3.3), written only where a model has one; 1.5 the paired dense
/// (SPEC §3.4), likewise.
pub const VERSION_MINOR: u8 = 5;
/// Length of the fixed header: magic, major, minor, flags, reserved, `body_len`.
pub const HEADER_LEN: usize = 12;
/// Length of the trailing CRC-32.
pub const CRC_LEN: usize = 4;

/// CRC-32/ISO-HDLC (the zlib/PNG CRC), table-driven (1 KiB of flash for the table).
pub(crate) const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// The CRC-32/ISO-HDLC of `bytes`, as stored at the end of a blob.
///
/// ```
/// assert_eq!(tinykd_format::crc32(b"123456789"), 0xCBF4_3926);
/// ```
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC.checksum(bytes)
}

/// The decoded fixed header of a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// Major format version (equal to [`VERSION_MAJOR`] once parsed).
    pub major: u8,
    /// Minor format version (any value).
    pub minor: u8,
    /// Length of the postcard body that follows the header.
    pub body_len: u32,
}

impl Header {
    /// Parses and checks the header: length, magic, major version, flags and reserved bytes.
    /// Does not look at the body or the CRC (see [`validate`](crate::validate)).
    ///
    /// ```
    /// use tinykd_format::{Error, Header};
    /// let mut blob = [b'T', b'K', b'D', 1, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0];
    /// assert_eq!(Header::parse(&blob).map(|h| h.body_len), Ok(5));
    /// blob[3] = 2;
    /// assert_eq!(Header::parse(&blob), Err(Error::HeaderUnsupportedVersion));
    /// ```
    pub fn parse(blob: &[u8]) -> Result<Header> {
        let Some(&[m0, m1, m2, major, minor, flags, r0, r1, l0, l1, l2, l3]) =
            blob.first_chunk::<HEADER_LEN>()
        else {
            return Err(Error::HeaderTruncated);
        };
        if blob.len() < HEADER_LEN + CRC_LEN {
            return Err(Error::HeaderTruncated);
        }
        if [m0, m1, m2] != MAGIC {
            return Err(Error::HeaderBadMagic);
        }
        if major != VERSION_MAJOR {
            return Err(Error::HeaderUnsupportedVersion);
        }
        if flags != 0 || r0 != 0 || r1 != 0 {
            return Err(Error::HeaderBadFlags);
        }
        Ok(Header {
            major,
            minor,
            body_len: u32::from_le_bytes([l0, l1, l2, l3]),
        })
    }

    /// The 12 header bytes for this version and a body of `body_len` bytes.
    ///
    /// ```
    /// assert_eq!(tinykd_format::Header::encode(0x0102), *b"TKD\x01\x05\x00\x00\x00\x02\x01\x00\x00");
    /// ```
    pub fn encode(body_len: u32) -> [u8; HEADER_LEN] {
        Self::encode_minor(VERSION_MINOR, body_len)
    }

    /// The 12 header bytes for minor version `minor` (e.g. 0 for a blob without a scratch table).
    ///
    /// ```
    /// assert_eq!(tinykd_format::Header::encode_minor(0, 5), *b"TKD\x01\x00\x00\x00\x00\x05\x00\x00\x00");
    /// ```
    pub fn encode_minor(minor: u8, body_len: u32) -> [u8; HEADER_LEN] {
        let l = body_len.to_le_bytes();
        [
            MAGIC[0],
            MAGIC[1],
            MAGIC[2],
            VERSION_MAJOR,
            minor,
            0,
            0,
            0,
            l[0],
            l[1],
            l[2],
            l[3],
        ]
    }
}
