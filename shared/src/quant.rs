//! The shared integer arithmetic: one requantization rule, one multiplier encoding, one rounding
//! of averages, and the host-side float ↔ int8 mapping (SPEC §4).
//!
//! These functions live here, once, so that the exporter (which computes multipliers from float
//! scales) and the device (which applies them) cannot drift apart: bit-exact host/device
//! agreement rests on both sides calling the same code.
//!
//! ```
//! use tinykd_format::{quantize_multiplier, requantize};
//! // Scale an accumulator by 0.3 with the Q31 multiplier the exporter would store.
//! let (m, s) = quantize_multiplier(0.3);
//! assert_eq!((m, s), (1_288_490_189, -1));
//! assert_eq!(requantize(1000, m, s), 300);
//! ```

/// Applies a Q31 `multiplier` and `shift` to an accumulator with single rounding, round half up
/// (CMSIS-NN `arm_nn_requantize` with `CMSIS_NN_USE_SINGLE_ROUNDING`; SPEC §4).
///
/// The real factor is `multiplier · 2^(shift − 31)`. A validated blob only holds shifts in
/// `[-31, 30]`; other values are clamped into that range so that the function is total and never
/// panics. The result saturates to the `i32` range.
///
/// ```
/// use tinykd_format::requantize;
/// let half = 1 << 30; // 0.5 in Q31, with shift 0
/// assert_eq!(requantize(100, half, 0), 50);
/// assert_eq!(requantize(101, half, 0), 51); // 50.5 rounds up
/// assert_eq!(requantize(-101, half, 0), -50); // -50.5 rounds up too
/// assert_eq!(requantize(i32::MAX, i32::MAX, 30), i32::MAX); // saturates
/// ```
#[inline]
pub fn requantize(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let total = 31 - shift.clamp(-31, 30); // in [1, 62]
    let round = 1i64 << (total - 1);
    // |acc · multiplier| ≤ 2^62 and round ≤ 2^61, so the sum fits an i64.
    let v = (i64::from(acc) * i64::from(multiplier) + round) >> total;
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Encodes a positive real factor as `(multiplier, shift)` for [`requantize`]: `real = m0 · 2^shift`
/// with `m0 ∈ [0.5, 1)` and `multiplier = round(m0 · 2^31)`, halved with `shift + 1` when it rounds
/// to `2^31` (SPEC §4, TFLite `QuantizeMultiplier`).
///
/// Works on the bits of the `f64` (no `libm`, no `frexp`). Values that the encoding cannot carry
/// are mapped as follows: zero, negative, subnormal, NaN and anything below `2^-32` (shift < −31)
/// give `(0, 0)`, a factor that makes every output 0 (TFLite flushes the same way); values of
/// `2^30` or more saturate to `(i32::MAX, 30)`. The builder rejects those large factors instead
/// of saturating.
///
/// ```
/// use tinykd_format::quantize_multiplier;
/// assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
/// assert_eq!(quantize_multiplier(1.0), (1 << 30, 1));
/// assert_eq!(quantize_multiplier(0.75), (3 << 29, 0));
/// assert_eq!(quantize_multiplier(0.0), (0, 0));
/// assert_eq!(quantize_multiplier(-1.0), (0, 0));
/// ```
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    let bits = real.to_bits();
    let negative = bits >> 63 != 0;
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = bits & ((1u64 << 52) - 1);
    // Negative, zero, subnormal (< 2^-1022), infinity and NaN.
    if negative || exponent == 0 || exponent == 0x7ff {
        return (0, 0);
    }
    // real = (2^52 + mantissa) · 2^(exponent − 1075) = m0 · 2^shift with
    // m0 = (2^52 + mantissa) / 2^53 ∈ [0.5, 1) and shift = exponent − 1022.
    let significand = (1u64 << 52) | mantissa;
    // round(m0 · 2^31) = round(significand / 2^22); the value is positive, so half up = half away.
    let mut q = (significand + (1u64 << 21)) >> 22;
    let mut shift = exponent - 1022;
    if q == 1u64 << 31 {
        q = 1u64 << 30;
        shift += 1;
    }
    if shift < -31 {
        return (0, 0);
    }
    if shift > 30 {
        return (i32::MAX, 30);
    }
    // q ∈ [2^30, 2^31): fits an i32.
    (q as i32, shift)
}

/// Encodes a positive real factor like [`quantize_multiplier`], but with the factor rounded to a
/// multiple of `2^-32` instead of to 31 significant bits, whenever that leaves the multiplier in
/// `[2^30, 2^31)`: for a factor below `0.25` (`shift ≤ −2`) the multiplier is then a multiple of
/// `2^hs`, `hs = −1 − shift`, and `requantize(acc, m, shift)` equals
/// `⌊(acc · (m >> hs) + 2^31) / 2^32⌋` — one `SMMLAR` on a Cortex-M4, with the output zero point
/// in its accumulate operand (SPEC §4). The pair is an ordinary `(multiplier, shift)`; every
/// reader applies it with [`requantize`] as before.
///
/// The cost is precision: the factor's absolute error is at most `2^-33` (relative `2^-33 /
/// real`, e.g. `2^-24` for a factor of `2^-9`, a typical int8 layer's), against `2^-32` relative
/// for [`quantize_multiplier`]; it moves an int8 output only when the exact value lies within
/// `|acc| · 2^-33` of a rounding boundary. Factors of `0.25` or more, and those whose rounding
/// would leave the range, are encoded exactly as [`quantize_multiplier`] does.
///
/// ```
/// use tinykd_format::{quantize_multiplier, quantize_multiplier_q32, requantize};
/// let (m, s) = quantize_multiplier_q32(0.003);
/// let hs = -1 - s;
/// assert_eq!(m % (1 << hs), 0);
/// assert_eq!(m as i64 >> hs, (0.003f64 * 2f64.powi(32)).round() as i64);
/// assert_eq!(quantize_multiplier_q32(0.3), quantize_multiplier(0.3));
/// for acc in [-100_000, -7, 0, 5, 123_456] {
///     let smmlar = (acc as i64 * (m as i64 >> hs) + (1 << 31)) >> 32;
///     assert_eq!(requantize(acc, m, s) as i64, smmlar);
/// }
/// ```
pub fn quantize_multiplier_q32(real: f64) -> (i32, i32) {
    let (m, s) = quantize_multiplier(real);
    let hs = -1 - s;
    if m == 0 || !(1..=30).contains(&hs) {
        return (m, s);
    }
    // As in quantize_multiplier: real = significand · 2^(exponent − 1075), m = round(significand
    // / 2^22) with shift = exponent − 1022; rounding at 2^-32 instead is round(significand /
    // 2^(22 + hs)), then scaled back up by 2^hs.
    let bits = real.to_bits();
    let significand = (1u64 << 52) | (bits & ((1u64 << 52) - 1));
    let k = 22 + hs as u32;
    let q = ((significand + (1u64 << (k - 1))) >> k) << hs;
    if (1u64 << 30..1u64 << 31).contains(&q) {
        (q as i32, s)
    } else {
        (m, s)
    }
}

/// Integer average with the pooling rounding rule: round half away from zero (SPEC §4).
///
/// `count` is the number of valid cells (always ≥ 1 in a validated blob); a `count` ≤ 0 gives 0
/// rather than a division fault.
///
/// ```
/// use tinykd_format::average;
/// assert_eq!(average(5, 2), 3); // 2.5 → 3
/// assert_eq!(average(-5, 2), -3); // -2.5 → -3
/// assert_eq!(average(7, 3), 2); // 2.33 → 2
/// assert_eq!(average(1, 0), 0);
/// ```
#[inline]
pub fn average(sum: i32, count: i32) -> i32 {
    if count <= 0 {
        return 0;
    }
    let half = count / 2;
    let biased = if sum >= 0 {
        sum.saturating_add(half)
    } else {
        sum.saturating_sub(half)
    };
    biased / count
}

/// Per-tensor asymmetric int8 quantization: `real = scale · (q − zero_point)` (SPEC §2).
///
/// The scale is metadata for the host (quantizing inputs, dequantizing outputs); the device's run
/// path never touches it.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Quant {
    /// Real value of one quantization step; finite and positive in a valid blob.
    pub scale: f32,
    /// The int8 value that represents real 0.
    pub zero_point: i8,
}

impl Quant {
    /// Quantizes a real value: `clamp(round_half_even(x / scale) + zero_point, −128, 127)`
    /// (SPEC §4). NaN maps to the zero point.
    ///
    /// ```
    /// use tinykd_format::Quant;
    /// let q = Quant { scale: 0.5, zero_point: -10 };
    /// assert_eq!(q.quantize(1.0), -8);
    /// assert_eq!(q.quantize(0.25), -10); // 0.5 steps: ties go to even
    /// assert_eq!(q.quantize(0.75), -8); // 1.5 → 2
    /// assert_eq!(q.quantize(1e9), 127);
    /// assert_eq!(q.quantize(-1e9), -128);
    /// ```
    pub fn quantize(&self, x: f32) -> i8 {
        let v = x / self.scale;
        if v.is_nan() {
            return self.zero_point;
        }
        // Anything outside ±512 saturates after adding the zero point anyway; clamping first keeps
        // the integer conversion exact.
        let r = round_half_even(v.clamp(-512.0, 512.0));
        (r + i32::from(self.zero_point)).clamp(-128, 127) as i8
    }

    /// The real value of `q`: `scale · (q − zero_point)`.
    ///
    /// ```
    /// use tinykd_format::Quant;
    /// let q = Quant { scale: 0.5, zero_point: -10 };
    /// assert_eq!(q.dequantize(-8), 1.0);
    /// assert_eq!(q.dequantize(-10), 0.0);
    /// ```
    pub fn dequantize(&self, q: i8) -> f32 {
        self.scale * (i32::from(q) - i32::from(self.zero_point)) as f32
    }

    /// The int8 clamp `[act_min, act_max]` that fuses `activation` into requantization for an
    /// output with this quantization (SPEC §3): ReLU clamps at the zero point (real 0), ReLU6 also
    /// at `quantize(6.0)`.
    ///
    /// ```
    /// use tinykd_format::{Activation, Quant};
    /// let q = Quant { scale: 0.05, zero_point: -128 };
    /// assert_eq!(q.activation_range(Activation::None), (-128, 127));
    /// assert_eq!(q.activation_range(Activation::Relu), (-128, 127));
    /// assert_eq!(q.activation_range(Activation::Relu6), (-128, -8));
    /// ```
    pub fn activation_range(&self, activation: Activation) -> (i8, i8) {
        match activation {
            Activation::None => (i8::MIN, i8::MAX),
            Activation::Relu => (self.zero_point, i8::MAX),
            Activation::Relu6 => (self.zero_point, self.quantize(6.0).max(self.zero_point)),
        }
    }
}

/// Rounds to the nearest integer, ties to even, for `|v| ≤ 2^23` (exact there).
fn round_half_even(v: f32) -> i32 {
    let mut floor = v as i32; // truncates toward zero
    if floor as f32 > v {
        floor -= 1;
    }
    // Exact: v and floor are within 1 of each other and both representable.
    let frac = v - floor as f32;
    if frac > 0.5 || (frac == 0.5 && floor % 2 != 0) {
        floor + 1
    } else {
        floor
    }
}

/// An activation fused into the int8 clamp of Conv2d, Dense and Add.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Activation {
    /// No clamp beyond the int8 range.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SPEC §4 formula written out in i128, independently of the i64 implementation.
    fn requantize_oracle(acc: i32, m: i32, shift: i32) -> i32 {
        let total = 31 - shift;
        let v = (acc as i128 * m as i128 + (1i128 << (total - 1))) >> total;
        v.clamp(i32::MIN as i128, i32::MAX as i128) as i32
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            // splitmix64
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    #[test]
    fn requantize_matches_i128_oracle() {
        let mut rng = Rng(7);
        for _ in 0..200_000 {
            let acc = rng.next() as i32;
            let m = ((rng.next() as u32) >> 1 | (1 << 30)) as i32;
            let shift = (rng.next() % 62) as i32 - 31;
            assert_eq!(
                requantize(acc, m, shift),
                requantize_oracle(acc, m, shift),
                "{acc} {m} {shift}"
            );
        }
        for &acc in &[i32::MIN, i32::MAX, 0, -1, 1] {
            for &m in &[0, 1 << 30, i32::MAX] {
                for shift in -31..=30 {
                    assert_eq!(requantize(acc, m, shift), requantize_oracle(acc, m, shift));
                }
            }
        }
        // Out-of-range shifts are clamped, not a panic.
        assert_eq!(requantize(5, 1 << 30, 1000), requantize(5, 1 << 30, 30));
        assert_eq!(
            requantize(5, 1 << 30, i32::MIN),
            requantize(5, 1 << 30, -31)
        );
    }

    #[test]
    fn quantize_multiplier_reconstructs_real() {
        let mut rng = Rng(11);
        for _ in 0..100_000 {
            // log-uniform over [2^-31, 2^30)
            let e = (rng.next() % 61) as i32 - 31;
            let frac = 1.0 + (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let real = frac * 2f64.powi(e);
            let (m, s) = quantize_multiplier(real);
            assert!((1 << 30..=i32::MAX).contains(&m), "{real} -> {m}");
            assert!((-31..=30).contains(&s));
            let back = m as f64 * 2f64.powi(s - 31);
            // Q31 rounding: relative error at most 2^-31.
            assert!(
                ((back - real) / real).abs() <= 2f64.powi(-31),
                "{real} {back}"
            );
            // Same as the frexp-based TFLite reference.
            let (m0, e0) = frexp(real);
            let mut q = (m0 * 2f64.powi(31)).round() as i64;
            let mut e0 = e0;
            if q == 1 << 31 {
                q /= 2;
                e0 += 1;
            }
            assert_eq!((m, s), (q as i32, e0));
        }
        // Rounds up to 2^31: halved, shift incremented.
        let just_below_one = 1.0 - 2f64.powi(-40);
        assert_eq!(quantize_multiplier(just_below_one), (1 << 30, 1));
        assert_eq!(quantize_multiplier(2f64.powi(-33)), (0, 0));
        assert_eq!(quantize_multiplier(2f64.powi(-32)), (1 << 30, -31));
        assert_eq!(quantize_multiplier(2f64.powi(31)), (i32::MAX, 30));
        assert_eq!(quantize_multiplier(f64::NAN), (0, 0));
        assert_eq!(quantize_multiplier(f64::INFINITY), (0, 0));
        assert_eq!(quantize_multiplier(f64::MIN_POSITIVE / 4.0), (0, 0));
    }

    #[test]
    fn quantize_multiplier_q32_is_a_smmlar_multiplier() {
        let mut rng = Rng(12);
        for _ in 0..100_000 {
            let e = (rng.next() % 40) as i32 - 36;
            let frac = 1.0 + (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let real = frac * 2f64.powi(e);
            let (m, s) = quantize_multiplier_q32(real);
            let (m0, s0) = quantize_multiplier(real);
            assert_eq!(s, s0, "{real}");
            let hs = -1 - s;
            if real >= 0.25 || hs > 30 || m0 == 0 {
                assert_eq!((m, s), (m0, s0));
                continue;
            }
            assert!((1 << 30..=i32::MAX).contains(&m), "{real} -> {m}");
            if m != m0 {
                assert_eq!(m % (1 << hs), 0, "{real}");
                // Rounded at 2^-32: the absolute error is at most 2^-33.
                let back = m as f64 * 2f64.powi(s - 31);
                assert!(
                    (back - real).abs() <= 2f64.powi(-33) * (1.0 + 1e-9),
                    "{real}"
                );
                let mq = i64::from(m) >> hs;
                for _ in 0..4 {
                    let acc = rng.next() as i32;
                    let smmlar = ((i64::from(acc) * mq + (1 << 31)) >> 32) as i32;
                    assert_eq!(requantize(acc, m, s), smmlar, "{acc} {m} {s}");
                }
            }
        }
    }

    fn frexp(x: f64) -> (f64, i32) {
        let mut e = 0;
        let mut m = x;
        while m >= 1.0 {
            m /= 2.0;
            e += 1;
        }
        while m < 0.5 {
            m *= 2.0;
            e -= 1;
        }
        (m, e)
    }

    #[test]
    fn average_rounds_half_away_from_zero() {
        for sum in -1000..=1000 {
            for count in 1..=20 {
                let exact = sum as f64 / count as f64;
                let expected = if exact >= 0.0 {
                    (exact + 0.5).floor()
                } else {
                    (exact - 0.5).ceil()
                };
                assert_eq!(average(sum, count) as f64, expected, "{sum}/{count}");
            }
        }
        assert_eq!(average(i32::MIN, 1), i32::MIN);
        assert_eq!(average(5, -3), 0);
    }

    #[test]
    fn quantize_rounds_half_even_and_saturates() {
        let q = Quant {
            scale: 1.0,
            zero_point: 0,
        };
        for (x, want) in [
            (0.5f32, 0i8),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (0.49, 0),
            (0.51, 1),
            (-127.5, -128),
            (126.5, 126),
            (127.5, 127),
            (f32::INFINITY, 127),
            (f32::NEG_INFINITY, -128),
            (f32::NAN, 0),
        ] {
            assert_eq!(q.quantize(x), want, "{x}");
        }
        // Agrees with std's round_ties_even everywhere in range.
        let q = Quant {
            scale: 0.037,
            zero_point: 3,
        };
        let mut x = -6.0f32;
        while x < 6.0 {
            let want = ((x / q.scale).round_ties_even() as i32 + 3).clamp(-128, 127) as i8;
            assert_eq!(q.quantize(x), want, "{x}");
            x += 0.0007;
        }
    }

    #[test]
    fn activation_ranges() {
        let q = Quant {
            scale: 0.1,
            zero_point: 5,
        };
        assert_eq!(q.activation_range(Activation::Relu), (5, 127));
        assert_eq!(q.activation_range(Activation::Relu6), (5, 65));
        let saturating = Quant {
            scale: 1.0,
            zero_point: 127,
        };
        assert_eq!(saturating.activation_range(Activation::Relu6), (127, 127));
    }
}
