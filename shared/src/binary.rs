//! Binary (1-bit) ops of format 1.2 (SPEC §3.2): bit-packed tensors, XNOR/popcount convolution
//! and dense layers, binary max pooling, and the folding of BatchNorm + sign into integer
//! thresholds that the exporter and the tests share.
//!
//! Conventions (larq compute engine's, `shared/reference/bnn-quant.md` §4):
//! - a **packed** tensor holds one sign per element, channels innermost, 32 channels per `u32`
//!   word (little-endian), `ceil(c / 32)` words per pixel; element `i` of a 32-channel group is
//!   bit `i`; **bit 1 = −1, bit 0 = +1** (so sign(0) = +1); the unused high bits of a pixel's last
//!   word are 0;
//! - weights are packed the same way, OHWI with I packed: `[out][kh][kw][words(in)]`;
//! - the accumulator of an output is `p = Σ popcount(x XOR w)` over every tap of the window and
//!   every word, the number of disagreeing signs; the ±1 dot product is `K − 2p` with
//!   `K = kh · kw · in`. Spatial padding is +1 (bit 0), so a padded tap adds `popcount(w)`.

use serde::{Deserialize, Serialize};

use crate::{I8s, LeI32s, Requant, Shape};

/// Bits per packed word.
pub const PACK_BITS: u32 = 32;

/// Words of one packed pixel of `channels` channels: `ceil(channels / 32)`.
///
/// ```
/// assert_eq!(tinykd_format::packed_words(1), 1);
/// assert_eq!(tinykd_format::packed_words(32), 1);
/// assert_eq!(tinykd_format::packed_words(33), 2);
/// ```
pub const fn packed_words(channels: u16) -> usize {
    (channels as usize).div_ceil(PACK_BITS as usize)
}

/// Bytes of a packed tensor of shape `s`: `h · w · ceil(c / 32) · 4`.
///
/// ```
/// use tinykd_format::{packed_len, Shape};
/// assert_eq!(packed_len(Shape { h: 7, w: 7, c: 40 }), 7 * 7 * 2 * 4);
/// ```
pub const fn packed_len(s: Shape) -> u64 {
    s.h as u64 * s.w as u64 * packed_words(s.c) as u64 * 4
}

/// Whether a binary convolution of `in_channels` → `out_channels` is exported bit-sliced
/// ([`crate::Op::BinaryConv2dSliced`], SPEC §3.3). The bit-sliced kernels count 32 filters and
/// 32 input channels per step whatever the true counts, so they need both to be multiples of 32
/// (no idle lanes). Then they win on the Cortex-M4/M7, for packed and int8 outputs alike (the
/// selection kernel, docs/binary-kernels.md); elsewhere they cost a transposition of the
/// weights per layer (about 1 % of a student on the Cortex-M0).
///
/// ```
/// assert!(tinykd_format::sliced_pays(64, 32));
/// assert!(tinykd_format::sliced_pays(64, 64));
/// assert!(!tinykd_format::sliced_pays(1, 32));
/// assert!(!tinykd_format::sliced_pays(64, 10));
/// ```
pub const fn sliced_pays(in_channels: u16, out_channels: u16) -> bool {
    in_channels > 0
        && in_channels.is_multiple_of(32)
        && out_channels > 0
        && out_channels.is_multiple_of(32)
}

/// How a tensor's bytes hold its elements. Tensor 0 (the model input) is always [`Layout::Int8`];
/// every other tensor has the layout its op produces ([`crate::Op::output_layout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Layout {
    /// One int8 per element, HWC (SPEC §2).
    Int8,
    /// One bit per element, 32 channels per little-endian `u32` word (SPEC §2.2).
    Packed,
}

impl Layout {
    /// Bytes of a tensor of shape `s` in this layout.
    pub const fn len(self, s: Shape) -> u64 {
        match self {
            Layout::Int8 => s.elements(),
            Layout::Packed => packed_len(s),
        }
    }
}

/// A borrowed run of `u32` words stored little-endian (packed weights). Unaligned reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Bits<'a>(pub &'a [u8]);

impl<'a> Bits<'a> {
    /// Number of whole words.
    pub const fn words(&self) -> usize {
        self.0.len() / 4
    }
    /// Word `i`, or `None` past the end.
    ///
    /// ```
    /// assert_eq!(tinykd_format::Bits(&[1, 0, 0, 0x80]).word(0), Some(0x8000_0001));
    /// ```
    #[inline]
    pub fn word(&self, i: usize) -> Option<u32> {
        let start = i.checked_mul(4)?;
        let b = self.0.get(start..start.checked_add(4)?)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }
    /// The raw bytes.
    pub const fn bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// What a binary conv/dense layer writes (SPEC §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BinaryOutput<'a> {
    /// A packed tensor: BatchNorm + sign folded into one integer threshold per output channel.
    /// Output bit (1 = −1) is `p > thresholds[c]`, or `p < thresholds[c]` where `flip[c]` is 1
    /// (negative BatchNorm slope); see [`fold_sign`].
    Packed {
        /// One i32 per output channel.
        #[serde(borrow)]
        thresholds: LeI32s<'a>,
    },
    /// An int8 tensor (the layer before an int8 head): `acc = bias[c] ± (K − 2p)` (minus where
    /// `flip[c]` is 1), then requantized exactly as an int8 conv (SPEC §4).
    Int8 {
        /// One i32 per output channel, in units of one ±1 product.
        #[serde(borrow)]
        bias: LeI32s<'a>,
        /// Per-output-channel requantization.
        #[serde(borrow)]
        requant: Requant<'a>,
        /// Lower clamp of the output.
        act_min: i8,
        /// Upper clamp of the output.
        act_max: i8,
    },
}

impl BinaryOutput<'_> {
    /// Bytes of constant data this output stage borrows from the blob.
    pub const fn param_bytes(&self) -> usize {
        match self {
            BinaryOutput::Packed { thresholds } => thresholds.bytes().len(),
            BinaryOutput::Int8 { bias, requant, .. } => {
                bias.bytes().len() + requant.multipliers.bytes().len() + requant.shifts.len()
            }
        }
    }
}

/// Binary 2-D convolution (dense, `groups` = 1) by XNOR/popcount. SPEC §3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BinaryConv2dOp<'a> {
    /// Input tensor id: packed, or int8 when `input_thresholds` is not empty.
    pub input: u16,
    /// Kernel height, width.
    pub kernel: [u8; 2],
    /// Stride along height, width.
    pub stride: [u8; 2],
    /// Padding: top, left, bottom, right; padded taps are +1 (bit 0).
    pub padding: [u8; 4],
    /// Packed OHWI weights `[out][kh][kw][words(in)]`, u32 LE; unused channel bits 0.
    #[serde(borrow)]
    pub weights: Bits<'a>,
    /// Empty for a packed input. For an int8 input: 1 (per tensor) or `in` (per channel) i32
    /// values `t`; the input bit is `q < t` (−1 below the threshold; `t = zero_point` is sign).
    #[serde(borrow)]
    pub input_thresholds: LeI32s<'a>,
    /// One byte per output channel, 0 or 1 (negative BatchNorm slope: compare the other way).
    #[serde(borrow)]
    pub flip: I8s<'a>,
    /// Packed output (thresholds) or int8 output (requantization).
    #[serde(borrow)]
    pub output: BinaryOutput<'a>,
}

/// Binary fully connected layer over the HWC-flattened input; output `[1, 1, out]`. SPEC §3.2.
/// It is the binary convolution whose kernel is the whole input (no padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BinaryDenseOp<'a> {
    /// Input tensor id: packed, or int8 when `input_thresholds` is not empty.
    pub input: u16,
    /// Packed weights `[out][h][w][words(c)]` of the input's shape, u32 LE; unused bits 0.
    #[serde(borrow)]
    pub weights: Bits<'a>,
    /// As [`BinaryConv2dOp::input_thresholds`].
    #[serde(borrow)]
    pub input_thresholds: LeI32s<'a>,
    /// As [`BinaryConv2dOp::flip`].
    #[serde(borrow)]
    pub flip: I8s<'a>,
    /// Packed or int8 output.
    #[serde(borrow)]
    pub output: BinaryOutput<'a>,
}

/// Folds `z = a · dot + b` followed by sign (sign(0) = +1) into the integer comparison the
/// kernels make on the popcount `p` (with `dot = k − 2p`, `k` = products per output): returns
/// `(threshold, flip)` such that the output is −1 (bit 1) exactly when `z < 0`, i.e. when
/// `p > threshold` (`flip` false) or `p < threshold` (`flip` true, for `a < 0`).
///
/// For BatchNorm after a binary conv, `a = γ·α / √(σ² + ε)` and `b = β − γ·μ / √(σ² + ε) − τ`
/// (α a positive weight scale, τ the next layer's sign threshold; see [`fold_batchnorm_sign`]).
/// `a = 0` gives a constant output. Computed in `f64`; no `libm` needed.
///
/// ```
/// use tinykd_format::fold_sign;
/// // z = dot − 1 with k = 4: dot ∈ {4, 2, 0, −2, −4} for p = 0..=4; z < 0 iff p ≥ 2, i.e. p > 1.
/// assert_eq!(fold_sign(4, 1.0, -1.0), (1, false));
/// // z = −dot: z < 0 iff dot > 0 iff p < 2; at p = 2, z = 0 → +1.
/// assert_eq!(fold_sign(4, -1.0, 0.0), (2, true));
/// ```
pub fn fold_sign(k: u32, a: f64, b: f64) -> (i32, bool) {
    fold_by(k, a, |dot| a * dot + b)
}

/// The threshold for `z(dot)`, affine with slope `a`: a first guess from the zero crossing, then
/// corrected against `z` itself at the boundary, so that ties (`z = 0` → +1) come out exactly as
/// the float expression evaluates them. Thresholds are kept in `[−1, k + 1]` unless constant.
fn fold_by(k: u32, a: f64, z: impl Fn(f64) -> f64) -> (i32, bool) {
    let k = i64::from(k);
    let minus = |p: i64| z((k - 2 * p) as f64) < 0.0;
    if a == 0.0 || !a.is_finite() {
        // Constant: −1 everywhere iff z < 0 (p > i32::MIN always holds, p > i32::MAX never).
        return (if minus(0) { i32::MIN } else { i32::MAX }, false);
    }
    // z < 0 ⇔ a·(k − 2p) < −b. For a > 0: p > (k + b/a) / 2; for a < 0: p < (k + b/a) / 2.
    let x = (k as f64 + z(0.0) / a) / 2.0;
    let clamp = |t: i32, lo: i64, hi: i64| i64::from(t).clamp(lo, hi);
    if a > 0.0 {
        // −1 iff p > t.
        let mut t = clamp(floor_i32(x), -1, k);
        while t >= 0 && minus(t) {
            t -= 1;
        }
        while t < k && !minus(t + 1) {
            t += 1;
        }
        (t as i32, false)
    } else {
        // −1 iff p < t.
        let mut t = clamp(ceil_i32(x), 0, k + 1);
        while t > 0 && !minus(t - 1) {
            t -= 1;
        }
        while t <= k && minus(t) {
            t += 1;
        }
        (t as i32, true)
    }
}

/// [`fold_sign`] of a BatchNorm (per channel: `gamma`, `beta`, running `mean` and `var`, `eps`)
/// applied to `alpha · dot` (α ≥ 0 a weight scale, 1 if none), then sign with an optional shift
/// `tau` (ReAct's RSign threshold of the next layer): the output is −1 iff
/// `gamma · (alpha · dot − mean) / sqrt(var + eps) + beta < tau`.
///
/// ```
/// use tinykd_format::fold_batchnorm_sign;
/// // γ = −2 (negative slope), μ = 1, σ² + ε = 4, β = 0: z = −(dot − 1), −1 iff dot > 1.
/// assert_eq!(fold_batchnorm_sign(9, 1.0, -2.0, 0.0, 1.0, 3.0, 1.0, 0.0), (4, true));
/// ```
#[allow(clippy::too_many_arguments)]
pub fn fold_batchnorm_sign(
    k: u32,
    alpha: f64,
    gamma: f64,
    beta: f64,
    mean: f64,
    var: f64,
    eps: f64,
    tau: f64,
) -> (i32, bool) {
    let sd = sqrt(var + eps);
    fold_by(k, gamma * alpha / sd, |dot| {
        gamma * (alpha * dot - mean) / sd + beta - tau
    })
}

/// Input threshold `t` (for [`BinaryConv2dOp::input_thresholds`]) that binarizes an int8 tensor
/// of quantization `q` at the real value `tau`: `q < t` ⇔ `scale · (q − zp) < tau`.
///
/// ```
/// use tinykd_format::{binarize_threshold, Quant};
/// let q = Quant { scale: 0.5, zero_point: -3 };
/// assert_eq!(binarize_threshold(q, 0.0), -3); // plain sign: q < zp
/// assert_eq!(binarize_threshold(q, 0.75), -1); // 0.5 · (q + 3) < 0.75 ⇔ q < −1.5 ⇔ q ≤ −2
/// ```
pub fn binarize_threshold(q: crate::Quant, tau: f32) -> i32 {
    // q < zp + tau/scale ⇔ q < ceil(zp + tau/scale) for integer q.
    ceil_i32(f64::from(q.zero_point) + f64::from(tau) / f64::from(q.scale))
}

/// `floor(x)` saturated to i32 (NaN → 0), without `libm`.
fn floor_i32(x: f64) -> i32 {
    if x.is_nan() {
        return 0;
    }
    if x >= i32::MAX as f64 {
        return i32::MAX;
    }
    if x <= i32::MIN as f64 {
        return i32::MIN;
    }
    let t = x as i64; // truncates toward zero, exact here
    let t = if (t as f64) > x { t - 1 } else { t };
    t as i32
}

/// `ceil(x)` saturated to i32 (NaN → 0), without `libm`.
fn ceil_i32(x: f64) -> i32 {
    let f = floor_i32(x);
    if f != i32::MAX && f64::from(f) < x {
        f + 1
    } else {
        f
    }
}

/// Square root by Newton's method (host-side folding only; no `libm` in `no_std`).
fn sqrt(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 {
        return if v == 0.0 { 0.0 } else { f64::NAN };
    }
    if v.is_infinite() {
        return v;
    }
    // Start from a power-of-two estimate taken from the exponent bits, then iterate.
    let exp = ((v.to_bits() >> 52) & 0x7ff) as i64 - 1023;
    let mut x = f64::from_bits(((((exp / 2) + 1023) as u64) & 0x7ff) << 52);
    for _ in 0..60 {
        let next = 0.5 * (x + v / x);
        if next == x {
            break;
        }
        x = next;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The float BatchNorm + sign that the folded threshold replaces: −1 iff z < 0.
    #[allow(clippy::too_many_arguments)]
    fn float_bit(
        dot: i64,
        alpha: f64,
        gamma: f64,
        beta: f64,
        mean: f64,
        var: f64,
        eps: f64,
        tau: f64,
    ) -> bool {
        let z = gamma * (alpha * dot as f64 - mean) / sqrt(var + eps) + beta - tau;
        z < 0.0
    }

    fn folded_bit(p: i64, (t, flip): (i32, bool)) -> bool {
        if flip {
            p < i64::from(t)
        } else {
            p > i64::from(t)
        }
    }

    #[test]
    fn sqrt_is_exact_on_squares_and_close_elsewhere() {
        for i in 0..2000u32 {
            let v = f64::from(i) * 0.37 + 1e-9;
            assert!(
                (sqrt(v) - v.sqrt()).abs() <= 1e-12 * v.sqrt().max(1.0),
                "{v}"
            );
            assert_eq!(sqrt(f64::from(i * i)), f64::from(i));
        }
        assert_eq!(sqrt(0.25), 0.5);
    }

    #[test]
    fn floor_and_ceil() {
        for (x, f, c) in [
            (1.5, 1, 2),
            (-1.5, -2, -1),
            (2.0, 2, 2),
            (-2.0, -2, -2),
            (0.0, 0, 0),
            (-0.25, -1, 0),
            (1e300, i32::MAX, i32::MAX),
            (-1e300, i32::MIN, i32::MIN),
        ] {
            assert_eq!((floor_i32(x), ceil_i32(x)), (f, c), "{x}");
        }
    }

    /// Every p in [0, k] against the float model, for random BatchNorms incl. negative and zero
    /// gamma, and for constructed exact ties (z = 0 must give +1).
    #[test]
    fn folding_matches_float_batchnorm_and_sign() {
        let mut s = 0x1234_5678_9abc_def0u64;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut ties = 0;
        for case in 0..4000 {
            let k = 1 + (rnd() * 600.0) as u32;
            let gamma = match case % 5 {
                0 => 0.0,
                1 | 2 => -(0.01 + 3.0 * rnd()),
                _ => 0.01 + 3.0 * rnd(),
            };
            let alpha = if case % 3 == 0 { 1.0 } else { 0.1 + rnd() };
            let (beta, tau) = (
                4.0 * rnd() - 2.0,
                if case % 4 == 0 { rnd() - 0.5 } else { 0.0 },
            );
            let var = 0.01 + 50.0 * rnd();
            let eps = 1e-5;
            // Half of the cases: a mean that puts an exact tie on an attainable dot.
            let mean = if case % 2 == 0 && gamma != 0.0 && tau == 0.0 && beta == beta {
                let p_tie = (rnd() * f64::from(k)) as i64;
                let dot = i64::from(k) - 2 * p_tie;
                // z = gamma/sd (alpha·dot − mean) + beta = 0 ⇔ mean = alpha·dot + beta·sd/gamma;
                // exact only in special cases, so use alpha = 1, beta = 0 there.
                dot as f64
            } else {
                100.0 * rnd() - 50.0
            };
            let (alpha, beta) = if case % 2 == 0 && tau == 0.0 {
                (1.0, 0.0)
            } else {
                (alpha, beta)
            };
            let folded = fold_batchnorm_sign(k, alpha, gamma, beta, mean, var, eps, tau);
            for p in 0..=i64::from(k) {
                let dot = i64::from(k) - 2 * p;
                let want = float_bit(dot, alpha, gamma, beta, mean, var, eps, tau);
                if dot as f64 == mean && alpha == 1.0 && beta == 0.0 && gamma != 0.0 {
                    assert!(!want, "a tie is +1");
                    ties += 1;
                }
                assert_eq!(
                    folded_bit(p, folded),
                    want,
                    "case {case}: k {k} p {p} γ {gamma} α {alpha} β {beta} μ {mean} σ² {var} τ {tau}"
                );
            }
        }
        assert!(ties > 500, "only {ties} ties exercised");
    }

    #[test]
    fn fold_sign_edge_cases() {
        // Zero slope: constant by the sign of b (0 → +1).
        assert_eq!(fold_sign(9, 0.0, -1.0), (i32::MIN, false));
        assert_eq!(fold_sign(9, 0.0, 0.0), (i32::MAX, false));
        assert_eq!(fold_sign(9, 0.0, 1.0), (i32::MAX, false));
        // Exact ties both ways: z = 2·dot − 2 = 0 at dot = 1 (k = 5, p = 2) → +1.
        let (t, f) = fold_sign(5, 2.0, -2.0);
        assert!(!f && t == 2, "p = 2 is the tie (+1), p = 3 is −1");
        let (t, f) = fold_sign(5, -2.0, 2.0);
        assert!(f && t == 2, "p = 2 is the tie (+1), p = 1 is −1");
        // Far thresholds stay within [−1, k + 1].
        assert_eq!(fold_sign(5, 1e-30, 1.0), (5, false));
        assert_eq!(fold_sign(5, 1e-30, -1.0), (-1, false));
        assert_eq!(fold_sign(5, -1e-30, 1.0), (0, true));
        assert_eq!(fold_sign(5, -1e-30, -1.0), (6, true));
    }

    #[test]
    fn binarize_threshold_is_sign_of_the_real_value() {
        for zp in [-128i8, -5, 0, 7, 127] {
            for scale in [0.01f32, 0.5, 3.0] {
                let q = crate::Quant {
                    scale,
                    zero_point: zp,
                };
                for tau in [0.0f32, 0.3, -0.7, 1.0] {
                    let t = binarize_threshold(q, tau);
                    for v in -128..=127i32 {
                        let real = f64::from(scale) * f64::from(v - i32::from(zp));
                        assert_eq!(
                            v < t,
                            real < f64::from(tau),
                            "zp {zp} s {scale} τ {tau} q {v}"
                        );
                    }
                }
            }
        }
    }
}
