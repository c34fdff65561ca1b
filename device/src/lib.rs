#![doc = include_str!("../README.md")]
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

#[macro_use]
mod fmt;

mod error;
mod model;
mod ops;
pub mod stream;

pub use error::{Error, Result};

/// The kernels `Model::run` uses now: this build's native ones ([`ops::NATIVE`]), or with the
/// `_bench` feature whatever [`bench::use_portable`] last chose.
#[inline(always)]
pub(crate) fn kernels() -> ops::Flavor {
    #[cfg(feature = "_bench")]
    if bench::PORTABLE.load(core::sync::atomic::Ordering::Relaxed) {
        return ops::Flavor::Portable;
    }
    ops::NATIVE
}

/// Benchmark and test hooks (feature `_bench`, not a stable API): switch `Model::run` between the
/// fast kernels and the portable reference at run time, so one firmware can time and compare both.
#[cfg(feature = "_bench")]
#[doc(hidden)]
pub mod bench {
    use core::sync::atomic::{AtomicBool, Ordering};

    pub(crate) static PORTABLE: AtomicBool = AtomicBool::new(false);

    /// `true`: run the portable reference kernels; `false`: this target's fast kernels.
    pub fn use_portable(on: bool) {
        PORTABLE.store(on, Ordering::Relaxed);
    }

    /// The name of the kernels this build runs when `use_portable(false)`.
    pub fn native_kernels() -> &'static str {
        match crate::ops::NATIVE {
            crate::ops::Flavor::Portable => "portable",
            crate::ops::Flavor::Dsp => "dsp",
            crate::ops::Flavor::Scalar => "scalar",
        }
    }
}
pub use model::Model;
pub use stream::{Prediction, Stream};
pub use tinykd_format::InputNorm;
pub use tinykd_format::{ModelDesc, Quant, Shape};

/// Index of the largest value (the first one on ties); 0 for an empty slice.
///
/// ```
/// assert_eq!(tinykd_device::argmax(&[-3, 7, 2, 7]), 1);
/// assert_eq!(tinykd_device::argmax(&[]), 0);
/// ```
pub fn argmax(scores: &[i8]) -> usize {
    let mut best = 0;
    let mut best_v = i8::MIN;
    for (i, &v) in scores.iter().enumerate() {
        if v > best_v || i == 0 {
            best = i;
            best_v = v;
        }
    }
    best
}

/// The `K` largest scores as `(index, score)`, highest first; equal scores keep index order.
/// Fewer than `K` entries if there are fewer scores.
///
/// ```
/// let top = tinykd_device::top_k::<2>(&[5, -1, 9, 5]);
/// assert_eq!(top.as_slice(), &[(2, 9), (0, 5)]);
/// ```
pub fn top_k<const K: usize>(scores: &[i8]) -> heapless::Vec<(usize, i8), K> {
    let mut top: heapless::Vec<(usize, i8), K> = heapless::Vec::new();
    for (i, &v) in scores.iter().enumerate() {
        // First slot holding a strictly smaller score: ties stay behind earlier indices.
        let at = top.iter().position(|&(_, t)| t < v).unwrap_or(top.len());
        if at >= K {
            continue;
        }
        if top.is_full() {
            top.pop();
        }
        // Cannot fail: there is room now and `at ≤ len`.
        let _ = top.insert(at, (i, v));
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_matches_sort() {
        let mut seed = 1u32;
        for n in 0..40 {
            let scores: std::vec::Vec<i8> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 29) as i8 - 4 // few distinct values: many ties
                })
                .collect();
            let mut want: std::vec::Vec<(usize, i8)> = scores.iter().copied().enumerate().collect();
            want.sort_by_key(|&(i, v)| (core::cmp::Reverse(v), i));
            want.truncate(3);
            assert_eq!(top_k::<3>(&scores).as_slice(), want.as_slice());
            if let Some(&(i, _)) = want.first() {
                assert_eq!(argmax(&scores), i);
            }
        }
        assert!(top_k::<0>(&[1, 2]).is_empty());
    }
}
