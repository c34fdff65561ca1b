//! The one error type of `tinykd-device`.

use core::fmt;

/// Why a model could not be loaded or run.
///
/// Loading can only fail with [`Error::Blob`] (the blob failed validation; the inner error names
/// the check). Running fails only for caller mistakes (wrong input length, small arena), or with
/// [`Error::RunInconsistent`], which a validated blob cannot trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The blob failed validation: the inner error names the phase and fault.
    Blob(tinykd_format::Error),
    /// The input slice's length differs from [`Model::input_len`](crate::Model::input_len).
    RunInputLength,
    /// The arena is smaller than [`Model::arena_size`](crate::Model::arena_size).
    RunArenaTooSmall,
    /// A kernel found its data inconsistent with the validated descriptor (a bug: please report).
    RunInconsistent,
    /// A pushed sample does not have the model's channel count
    /// ([`Stream::channels`](crate::Stream::channels)).
    StreamChannelCount,
    /// The stream's ring buffer is not exactly one window
    /// ([`Model::input_len`](crate::Model::input_len) values), or its arena is too small.
    StreamBufferSize,
    /// The hop is 0.
    StreamBadHop,
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// A stable number for the error, e.g. for a board's exit code: a blob error keeps its
    /// `tinykd_format::Error` number (0–255), run errors are 256 and up. Pinned by a test.
    ///
    /// ```
    /// use tinykd_device::Error;
    /// assert_eq!(Error::Blob(tinykd_format::Error::BodyBadCrc).code(), 6);
    /// assert_eq!(Error::RunArenaTooSmall.code(), 257);
    /// ```
    pub const fn code(&self) -> u16 {
        match self {
            Error::Blob(e) => *e as u8 as u16,
            Error::RunInputLength => 256,
            Error::RunArenaTooSmall => 257,
            Error::RunInconsistent => 258,
            Error::StreamChannelCount => 259,
            Error::StreamBufferSize => 260,
            Error::StreamBadHop => 261,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Blob(e) => write!(f, "invalid model blob: {e}"),
            Error::RunInputLength => f.write_str("run: input length differs from the model's"),
            Error::RunArenaTooSmall => f.write_str("run: arena smaller than the model needs"),
            Error::RunInconsistent => f.write_str("run: kernel data inconsistent (bug)"),
            Error::StreamChannelCount => f.write_str("stream: sample channel count differs"),
            Error::StreamBufferSize => {
                f.write_str("stream: ring not one window or arena too small")
            }
            Error::StreamBadHop => f.write_str("stream: hop is 0"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Blob(e) => Some(e),
            _ => None,
        }
    }
}

impl From<tinykd_format::Error> for Error {
    fn from(e: tinykd_format::Error) -> Self {
        Error::Blob(e)
    }
}

/// Turns a missing slice or value into [`Error::RunInconsistent`]: kernels use `get()` and this,
/// never indexing, so even an inconsistent descriptor cannot make them panic.
#[inline(always)]
pub(crate) fn need<T>(v: Option<T>) -> Result<T> {
    v.ok_or(Error::RunInconsistent)
}

#[cfg(test)]
mod tests {
    use super::Error;
    use tinykd_format::Error as F;

    #[test]
    fn codes_are_pinned() {
        assert_eq!(Error::Blob(F::HeaderTruncated).code(), 0);
        assert_eq!(Error::Blob(F::SamplesBadLength).code(), 34);
        assert_eq!(Error::RunInputLength.code(), 256);
        assert_eq!(Error::RunArenaTooSmall.code(), 257);
        assert_eq!(Error::RunInconsistent.code(), 258);
        assert_eq!(Error::StreamChannelCount.code(), 259);
        assert_eq!(Error::StreamBufferSize.code(), 260);
        assert_eq!(Error::StreamBadHop.code(), 261);
        assert_eq!(
            std::format!("{}", Error::Blob(F::PlanOverlap)),
            "invalid model blob: memory plan: live tensors share bytes"
        );
    }
}
