//! # tinykd-format
//!
//! The tinykd model blob (`.tkd`): its types, version rule, integrity check and validation, shared
//! by the host exporter and the device runtime. The wire contract is `shared/SPEC.md`; this crate
//! is its only implementation.
//!
//! - `#![no_std]`, no allocator: [`validate`] checks a blob in place and returns a [`ModelDesc`]
//!   that borrows weights straight from it (a model in flash stays in flash).
//! - The integer arithmetic both sides must agree on lives here, once: [`requantize`],
//!   [`quantize_multiplier`], [`average`], [`Quant`].
//! - Feature `alloc` adds the host-side `ModelBuilder`, which plans memory, encodes, and
//!   validates its own output, and `samples::to_vec` for sample sets.
//!
//! ```
//! use tinykd_format::{validate, Error};
//! // A blob is `TKD`, version 1.0, a postcard body and a CRC-32; anything else is an error value.
//! assert_eq!(validate(b"TKD\x02\0\0\0\0\0\0\0\0\0\0\0\0").unwrap_err(), Error::HeaderUnsupportedVersion);
//! ```
//!
//! ## Features
//! - `alloc`: the `ModelBuilder`, `encode_blob` and the sample-set writer (host side).
//! - `defmt`: `defmt::Format` for the error and descriptor types.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;

mod binary;
#[cfg(any(test, feature = "alloc"))]
mod builder;
mod desc;
mod error;
mod header;
mod norm;
mod paired;
mod quant;
pub mod recording;
pub mod samples;
mod scratch;
mod validate;

pub use binary::{
    binarize_threshold, fold_batchnorm_sign, fold_sign, packed_len, packed_words, sliced_pays,
    BinaryConv2dOp, BinaryDenseOp, BinaryOutput, Bits, Layout, PACK_BITS,
};
#[cfg(any(test, feature = "alloc"))]
pub use builder::{
    encode_blob, encode_blob_with_scratch, BinaryConv2dSpec, BinaryDenseSpec, BinaryOutputSpec,
    BuildError, BuildFault, BuildOp, Conv2dSpec, DenseSpec, ModelBuilder, PoolSpec,
};
pub use desc::{
    AddOp, Conv2dOp, DenseOp, DensePairedOp, I8s, LeI32s, ModelDesc, Op, OpKind, Ops, PoolOp,
    Requant, Shape, TensorDesc, TensorId, ADD_LEFT_SHIFT, TENSOR_RECORD_LEN,
};
pub use error::{Error, Result};
pub use header::{crc32, Header, CRC_LEN, HEADER_LEN, MAGIC, VERSION_MAJOR, VERSION_MINOR};
pub use norm::{InputNorm, INPUT_NORM_RECORD_LEN};
#[cfg(any(test, feature = "alloc"))]
pub use paired::pair_weights;
pub use paired::{
    paired_block, paired_chunks, paired_groups, paired_index, paired_odd_term, paired_weight,
    PAIRED_CHUNK_GROUPS, PAIRED_ODD_FACTOR,
};
pub use quant::{
    average, quantize_multiplier, quantize_multiplier_q32, requantize, Activation, Quant,
};
pub use scratch::{
    one_channel_band_stride, scratch_len, scratch_len_in, IM2COL_COLUMNS, ONE_CHANNEL_CHUNK,
    ONE_CHANNEL_RECORD, ONE_CHANNEL_STATE,
};
pub use validate::validate;

/// Most tensors (input included) a model may have; ops are one fewer.
pub const MAX_TENSORS: usize = 256;
/// Most elements (= bytes) one tensor may have: 4 MiB, beyond any microcontroller's RAM. It also
/// bounds every sum a kernel forms (a global average pool sums at most `2^22 · 128 < 2^31`).
pub const MAX_TENSOR_LEN: usize = 1 << 22;
/// Longest model name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Views bytes as int8 values (same size, alignment and validity), e.g. a sample read from a file.
///
/// ```
/// assert_eq!(tinykd_format::bytes_as_i8(&[0x80, 0x7f]), &[-128, 127]);
/// ```
pub fn bytes_as_i8(bytes: &[u8]) -> &[i8] {
    // SAFETY: `u8` and `i8` have the same size and alignment and every bit pattern is valid for
    // both, so the same memory read as `i8` is a valid slice of the same length and lifetime.
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
}

/// Views mutable bytes as mutable int8 values (e.g. an arena region holding a tensor).
///
/// ```
/// let mut b = [0u8; 2];
/// tinykd_format::bytes_as_i8_mut(&mut b)[0] = -1;
/// assert_eq!(b, [0xff, 0]);
/// ```
pub fn bytes_as_i8_mut(bytes: &mut [u8]) -> &mut [i8] {
    // SAFETY: as in `bytes_as_i8`; the exclusive borrow is carried over to the result.
    unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<i8>(), bytes.len()) }
}
