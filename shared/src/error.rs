//! The one error type of `tinykd-format`.
//!
//! Every variant is named for the phase that found it, then the fault (postcard's convention), so a
//! firmware log line such as `PlanOverlap` says both *where* validation stopped and *why*. Variants
//! carry no data: an error never allocates, is one byte, and prints a fixed text.

use core::fmt;

/// Everything that can be wrong with a blob or a sample set.
///
/// The numeric value of each variant (`err as u8`) is part of the public contract (a board may
/// report it as an exit code) and is pinned by a test: new variants are only ever appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
#[repr(u8)]
pub enum Error {
    /// The blob is shorter than its fixed header plus CRC (16 bytes).
    HeaderTruncated = 0,
    /// The blob does not start with the magic bytes `TKD`.
    HeaderBadMagic = 1,
    /// The blob's major format version is not the one this reader implements.
    HeaderUnsupportedVersion = 2,
    /// The flags or reserved header bytes are not zero.
    HeaderBadFlags = 3,
    /// `body_len` says the body is longer than the blob.
    BodyTruncated = 4,
    /// There are bytes after the CRC.
    BodyTrailingBytes = 5,
    /// The CRC-32 does not match the header and body.
    BodyBadCrc = 6,
    /// The body ended in the middle of a value.
    BodyUnexpectedEnd = 7,
    /// The body holds a value postcard cannot decode (bad varint, bad UTF-8, ...).
    BodyBadEncoding = 8,
    /// The body holds an op kind (enum tag) this reader does not know.
    BodyBadEnum = 9,
    /// Bytes remain after the descriptor, and the blob's minor version is not newer than the reader's.
    BodyTrailingData = 10,
    /// The model name is longer than [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes.
    BodyNameTooLong = 11,
    /// The tensor table's byte length is not a whole number of records.
    TensorTableBadLength = 12,
    /// There are fewer than 2 or more than [`MAX_TENSORS`](crate::MAX_TENSORS) tensors.
    TensorBadCount = 13,
    /// A tensor has a zero dimension or more than [`MAX_TENSOR_LEN`](crate::MAX_TENSOR_LEN) elements.
    TensorBadShape = 14,
    /// A tensor's stored byte length differs from the product of its shape.
    TensorBadLength = 15,
    /// A tensor's scale is not a finite positive number.
    TensorBadScale = 16,
    /// A tensor record's reserved byte is not zero.
    TensorBadReserved = 17,
    /// The number of ops is not the number of tensors minus one.
    OpBadCount = 18,
    /// An op reads a tensor that is not produced before it.
    OpBadInput = 19,
    /// An op's stored output shape differs from what its inputs and parameters give.
    OpShapeMismatch = 20,
    /// An op's output quantization must equal its input's (pooling, reshape) and does not.
    OpQuantMismatch = 21,
    /// A kernel or stride is zero, a pooling pad is not smaller than the kernel, or the window does
    /// not fit the padded input.
    OpBadWindow = 22,
    /// `groups` is zero or does not divide the input and output channels.
    OpBadGroups = 23,
    /// A weight slice's length does not match the op's shapes.
    OpBadWeightsLength = 24,
    /// A bias slice's length does not match the output channels.
    OpBadBiasLength = 25,
    /// A multiplier or shift slice's length does not match the output channels.
    OpBadRequantLength = 26,
    /// A requantization multiplier is neither 0 nor in `[2^30, 2^31)`.
    OpBadMultiplier = 27,
    /// A requantization shift is outside its allowed range.
    OpBadShift = 28,
    /// `act_min > act_max`.
    OpBadActivationRange = 29,
    /// A bias plus the largest possible sum of products could overflow the i32 accumulator.
    OpAccumulatorOverflow = 30,
    /// A tensor does not lie inside the arena (`offset + len > arena_size`).
    PlanArenaTooSmall = 31,
    /// Two tensors that are alive at the same time share arena bytes.
    PlanOverlap = 32,
    /// The sample set does not start with `TKS1`.
    SamplesBadMagic = 33,
    /// The sample set's length differs from what its header announces.
    SamplesBadLength = 34,
    /// The scratch table (format 1.1) is not one 4-aligned offset per op, or gives an offset to
    /// an op that needs no scratch.
    PlanBadScratch = 35,
    /// A binary op (format 1.2) reads or writes a tensor of the wrong layout (int8 where a packed
    /// tensor is required or the reverse), or a packed tensor's quantization is not scale 1,
    /// zero point 0.
    OpBadLayout = 36,
    /// A binary op's input thresholds, output thresholds or flip flags have the wrong length, or
    /// a flip flag is not 0 or 1.
    OpBadThresholds = 37,
    /// A packed weight word has a bit set beyond the input channels (the padding bits must be 0).
    OpBadWeightBits = 38,
    /// The input normalisation (format 1.3) is not one `(mean, std)` pair per input channel.
    InputNormBadCount = 39,
    /// An input normalisation mean is not finite, or a std is not a finite positive number.
    InputNormBadValue = 40,
    /// A `DensePaired` weight byte (format 1.5) is not a symmetric weight: an even byte 0 (a
    /// weight of −128), an odd byte 0x80, or a padding position of the last group not weight 0.
    OpBadPairedWeight = 41,
    /// A `DensePaired` odd-weight term (format 1.5) differs from `32512 · Σ` of its chunk's odd
    /// weights, or the table's length is not one value per row and chunk.
    OpBadPairedTerms = 42,
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// The fixed one-line description printed by `Display`.
    ///
    /// ```
    /// use tinykd_format::Error;
    /// assert_eq!(Error::BodyBadCrc.message(), "blob body: CRC-32 mismatch");
    /// ```
    pub const fn message(self) -> &'static str {
        match self {
            Error::HeaderTruncated => "blob header: shorter than header plus CRC",
            Error::HeaderBadMagic => "blob header: bad magic (expected TKD)",
            Error::HeaderUnsupportedVersion => "blob header: unsupported major version",
            Error::HeaderBadFlags => "blob header: flags or reserved bytes not zero",
            Error::BodyTruncated => "blob body: body_len runs past the end of the blob",
            Error::BodyTrailingBytes => "blob body: bytes after the CRC",
            Error::BodyBadCrc => "blob body: CRC-32 mismatch",
            Error::BodyUnexpectedEnd => "blob body: ended in the middle of a value",
            Error::BodyBadEncoding => "blob body: undecodable value",
            Error::BodyBadEnum => "blob body: unknown op kind",
            Error::BodyTrailingData => "blob body: unread bytes after the descriptor",
            Error::BodyNameTooLong => "blob body: model name too long",
            Error::TensorTableBadLength => "tensor table: length not a multiple of the record size",
            Error::TensorBadCount => "tensor table: too few or too many tensors",
            Error::TensorBadShape => "tensor: zero or oversized dimension",
            Error::TensorBadLength => "tensor: byte length differs from its shape",
            Error::TensorBadScale => "tensor: scale not finite and positive",
            Error::TensorBadReserved => "tensor: reserved byte not zero",
            Error::OpBadCount => "op list: count differs from tensors minus one",
            Error::OpBadInput => "op: input is not an earlier tensor",
            Error::OpShapeMismatch => "op: output shape differs from the computed one",
            Error::OpQuantMismatch => "op: output quantization must equal the input's",
            Error::OpBadWindow => "op: bad kernel, stride or padding",
            Error::OpBadGroups => "op: groups do not divide the channels",
            Error::OpBadWeightsLength => "op: weight length does not match the shapes",
            Error::OpBadBiasLength => "op: bias length does not match the output channels",
            Error::OpBadRequantLength => "op: multiplier/shift length does not match the channels",
            Error::OpBadMultiplier => "op: requantization multiplier out of range",
            Error::OpBadShift => "op: requantization shift out of range",
            Error::OpBadActivationRange => "op: act_min greater than act_max",
            Error::OpAccumulatorOverflow => "op: accumulator could overflow i32",
            Error::PlanArenaTooSmall => "memory plan: tensor outside the arena",
            Error::PlanOverlap => "memory plan: live tensors share bytes",
            Error::SamplesBadMagic => "sample set: bad magic (expected TKS1)",
            Error::SamplesBadLength => "sample set: length differs from its header",
            Error::PlanBadScratch => "memory plan: malformed scratch table",
            Error::OpBadLayout => "op: tensor layout (int8 or packed) not what the op requires",
            Error::OpBadThresholds => "op: threshold or flip length or value wrong",
            Error::OpBadWeightBits => "op: packed weights have bits set past the channels",
            Error::InputNormBadCount => "input normalisation: not one (mean, std) per channel",
            Error::InputNormBadValue => "input normalisation: mean not finite or std not > 0",
            Error::OpBadPairedWeight => {
                "op: dense_paired weight byte not a symmetric weight (even byte 0, odd byte 0x80, or nonzero padding)"
            }
            Error::OpBadPairedTerms => {
                "op: dense_paired odd-weight terms differ from the weights (or have the wrong length)"
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for Error {}

impl From<postcard::Error> for Error {
    fn from(e: postcard::Error) -> Self {
        match e {
            postcard::Error::DeserializeUnexpectedEnd => Error::BodyUnexpectedEnd,
            // An unknown variant index reaches serde's derived visitor, which reports it as a
            // custom error; in this crate's schema nothing else produces one.
            postcard::Error::DeserializeBadEnum | postcard::Error::SerdeDeCustom => {
                Error::BodyBadEnum
            }
            _ => Error::BodyBadEncoding,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    /// The numbers are a wire-level contract (boards report them): only append.
    #[test]
    fn discriminants_are_pinned() {
        let all = [
            (Error::HeaderTruncated, 0),
            (Error::HeaderBadMagic, 1),
            (Error::HeaderUnsupportedVersion, 2),
            (Error::HeaderBadFlags, 3),
            (Error::BodyTruncated, 4),
            (Error::BodyTrailingBytes, 5),
            (Error::BodyBadCrc, 6),
            (Error::BodyUnexpectedEnd, 7),
            (Error::BodyBadEncoding, 8),
            (Error::BodyBadEnum, 9),
            (Error::BodyTrailingData, 10),
            (Error::BodyNameTooLong, 11),
            (Error::TensorTableBadLength, 12),
            (Error::TensorBadCount, 13),
            (Error::TensorBadShape, 14),
            (Error::TensorBadLength, 15),
            (Error::TensorBadScale, 16),
            (Error::TensorBadReserved, 17),
            (Error::OpBadCount, 18),
            (Error::OpBadInput, 19),
            (Error::OpShapeMismatch, 20),
            (Error::OpQuantMismatch, 21),
            (Error::OpBadWindow, 22),
            (Error::OpBadGroups, 23),
            (Error::OpBadWeightsLength, 24),
            (Error::OpBadBiasLength, 25),
            (Error::OpBadRequantLength, 26),
            (Error::OpBadMultiplier, 27),
            (Error::OpBadShift, 28),
            (Error::OpBadActivationRange, 29),
            (Error::OpAccumulatorOverflow, 30),
            (Error::PlanArenaTooSmall, 31),
            (Error::PlanOverlap, 32),
            (Error::SamplesBadMagic, 33),
            (Error::SamplesBadLength, 34),
            (Error::PlanBadScratch, 35),
            (Error::OpBadLayout, 36),
            (Error::OpBadThresholds, 37),
            (Error::OpBadWeightBits, 38),
            (Error::InputNormBadCount, 39),
            (Error::InputNormBadValue, 40),
            (Error::OpBadPairedWeight, 41),
            (Error::OpBadPairedTerms, 42),
        ];
        for (i, (e, n)) in all.iter().enumerate() {
            assert_eq!(*e as u8, *n);
            assert_eq!(i, *n as usize, "variants must stay dense");
        }
    }

    #[test]
    fn display_is_fixed_text() {
        assert_eq!(
            std::format!("{}", Error::PlanOverlap),
            "memory plan: live tensors share bytes"
        );
        assert_eq!(
            Error::from(postcard::Error::DeserializeBadEnum),
            Error::BodyBadEnum
        );
        assert_eq!(
            Error::from(postcard::Error::DeserializeUnexpectedEnd),
            Error::BodyUnexpectedEnd
        );
        assert_eq!(
            Error::from(postcard::Error::DeserializeBadUtf8),
            Error::BodyBadEncoding
        );
    }
}
