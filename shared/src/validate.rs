//! `validate()`: every check of SPEC §6, in one pass, before anything runs.
//!
//! The order is header → CRC → decoding → tensors → ops → memory plan, so the first failing
//! phase names the error. Validation is `O(blob + tensors²)` time and uses a fixed 256-byte stack
//! table (the last use of each tensor), no allocator.

use crate::desc::{BodyHead, TENSOR_RECORD_LEN};
use crate::header::{CRC_LEN, HEADER_LEN};
use crate::paired::paired_bytes_ok;
use crate::{
    packed_len, packed_words, paired_chunks, paired_groups, paired_odd_term, scratch_len_in, AddOp,
    BinaryConv2dOp, BinaryDenseOp, BinaryOutput, Bits, Conv2dOp, DenseOp, DensePairedOp, Error,
    Header, I8s, InputNorm, Layout, LeI32s, ModelDesc, Op, PoolOp, Quant, Requant, Result, Shape,
    TensorDesc, MAX_NAME_LEN, MAX_TENSORS, MAX_TENSOR_LEN, VERSION_MINOR,
};

/// Checks a blob completely and returns its descriptor (SPEC §6).
///
/// Every failure is an [`Error`] naming the phase and fault; nothing panics, whatever the bytes.
///
/// ```
/// use tinykd_format::{validate, Error};
/// assert_eq!(validate(b"TKD").unwrap_err(), Error::HeaderTruncated);
/// assert_eq!(validate(b"PNG\x01\0\0\0\0\0\0\0\0\0\0\0\0").unwrap_err(), Error::HeaderBadMagic);
/// ```
pub fn validate(blob: &[u8]) -> Result<ModelDesc<'_>> {
    let header = Header::parse(blob)?;
    let body_end = usize::try_from(header.body_len)
        .ok()
        .and_then(|n| n.checked_add(HEADER_LEN))
        .ok_or(Error::BodyTruncated)?;
    let crc_end = body_end.checked_add(CRC_LEN).ok_or(Error::BodyTruncated)?;
    if crc_end > blob.len() {
        return Err(Error::BodyTruncated);
    }
    if crc_end < blob.len() {
        return Err(Error::BodyTrailingBytes);
    }
    let (covered, stored) = blob.split_at(body_end);
    let stored: [u8; 4] = stored.try_into().map_err(|_| Error::BodyTruncated)?;
    if crate::crc32(covered) != u32::from_le_bytes(stored) {
        return Err(Error::BodyBadCrc);
    }
    let body = covered.get(HEADER_LEN..).ok_or(Error::BodyTruncated)?;

    let (head, rest) = postcard::take_from_bytes::<BodyHead<'_>>(body)?;
    if head.name.len() > MAX_NAME_LEN {
        return Err(Error::BodyNameTooLong);
    }
    if head.tensors.len() % TENSOR_RECORD_LEN != 0 {
        return Err(Error::TensorTableBadLength);
    }
    let tensor_count = head.tensors.len() / TENSOR_RECORD_LEN;
    if !(2..=MAX_TENSORS).contains(&tensor_count) {
        return Err(Error::TensorBadCount);
    }
    let (op_count, ops_bytes) = postcard::take_from_bytes::<u32>(rest)?;
    if usize::try_from(op_count).ok() != Some(tensor_count - 1) {
        return Err(Error::OpBadCount);
    }
    let op_count = u16::try_from(op_count).map_err(|_| Error::OpBadCount)?;

    let tensors = Tensors(head.tensors);
    for id in 0..tensor_count {
        check_tensor(tensors.get(id)?, id, head.arena_size)?;
    }
    // Which tensors are packed (format 1.2): known once their op is decoded; the input is int8.
    let mut packed = [0u32; MAX_TENSORS / 32];

    // last_use[t]: the last op index during which tensor t must stay intact. A tensor is born
    // during the op that writes it (op t − 1; the input during op 0) and lives at least that long.
    let mut last_use = [0u8; MAX_TENSORS];
    for (t, slot) in last_use.iter_mut().enumerate().take(tensor_count) {
        *slot = birth(t);
    }
    let mut rest = ops_bytes;
    for i in 0..usize::from(op_count) {
        let (op, tail) = postcard::take_from_bytes::<Op<'_>>(rest)?;
        rest = tail;
        let out = tensors.get(i + 1)?;
        if header.minor < op.min_minor() {
            // Binary ops are format 1.2, the bit-sliced conv 1.4, the paired dense 1.5: in an older
            // blob their tags are unknown op kinds.
            return Err(Error::BodyBadEnum);
        }
        check_layouts(&op, &out, &mut packed, i + 1)?;
        check_op(&op, i, &tensors, &out)?;
        let step = u8::try_from(i).map_err(|_| Error::OpBadCount)?;
        for input in op.inputs().into_iter().flatten() {
            if let Some(slot) = last_use.get_mut(usize::from(input)) {
                *slot = step;
            }
        }
    }
    // Format 1.1 appends the scratch table: one u32 LE offset per op (SPEC §5.1).
    // From 1.2 on, an empty table means "no scratch plan" (portable kernels only).
    let (scratch, rest) = if header.minor >= 1 {
        let (table, tail) = postcard::take_from_bytes::<&[u8]>(rest)?;
        let empty_ok = header.minor >= 2 && table.is_empty();
        if !empty_ok && Some(table.len()) != usize::from(op_count).checked_mul(4) {
            return Err(Error::PlanBadScratch);
        }
        (table, tail)
    } else {
        (&[][..], rest)
    };
    // Format 1.3 appends the input normalisation: 8 bytes per input channel, or none (SPEC §5.2).
    let (input_norm, rest) = if header.minor >= 3 {
        let (norm, tail) = postcard::take_from_bytes::<&[u8]>(rest)?;
        if !norm.is_empty() {
            let input = tensors.get(0)?;
            InputNorm::new(norm, usize::from(input.shape.c))?;
        }
        (norm, tail)
    } else {
        (&[][..], rest)
    };
    // A newer minor may append optional data, which this reader skips (SPEC §1).
    let newer_minor = header.minor > VERSION_MINOR;
    if !rest.is_empty() && !newer_minor {
        return Err(Error::BodyTrailingData);
    }
    // The output is read by the caller after the last op.
    if let Some(slot) = last_use.get_mut(tensor_count - 1) {
        *slot = u8::try_from(op_count).map_err(|_| Error::OpBadCount)?;
    }
    check_plan(&tensors, tensor_count, &last_use)?;
    if !scratch.is_empty() {
        check_scratch(
            header.minor,
            ops_bytes,
            op_count,
            &tensors,
            tensor_count,
            &last_use,
            scratch,
            head.arena_size,
        )?;
    }

    Ok(ModelDesc {
        blob_len: blob.len(),
        minor: header.minor,
        name: head.name,
        arena_size: head.arena_size,
        tensors: head.tensors,
        ops: ops_bytes,
        op_count,
        scratch,
        input_norm,
        extension: rest,
        input: tensors.get(0)?,
        output: tensors.get(tensor_count - 1)?,
    })
}

/// The op index during which tensor `t` is written (the input counts as written during op 0).
fn birth(t: usize) -> u8 {
    u8::try_from(t.saturating_sub(1)).unwrap_or(u8::MAX)
}

/// Random access to the raw tensor table.
struct Tensors<'a>(&'a [u8]);

impl Tensors<'_> {
    fn get(&self, id: usize) -> Result<TensorDesc> {
        let start = id.checked_mul(TENSOR_RECORD_LEN).ok_or(Error::OpBadInput)?;
        let bytes = start
            .checked_add(TENSOR_RECORD_LEN)
            .and_then(|end| self.0.get(start..end))
            .ok_or(Error::OpBadInput)?;
        let record: &[u8; TENSOR_RECORD_LEN] = bytes.try_into().map_err(|_| Error::OpBadInput)?;
        let (desc, reserved) = TensorDesc::from_record(record);
        if reserved != 0 {
            return Err(Error::TensorBadReserved);
        }
        Ok(desc)
    }

    /// Tensor `id` as read by op `op`: it must have been produced before (`id ≤ op`).
    fn input(&self, id: u16, op: usize) -> Result<TensorDesc> {
        if usize::from(id) > op {
            return Err(Error::OpBadInput);
        }
        self.get(usize::from(id))
    }
}

fn check_tensor(t: TensorDesc, id: usize, arena_size: u32) -> Result<()> {
    let s = t.shape;
    if s.h == 0 || s.w == 0 || s.c == 0 || s.elements() > MAX_TENSOR_LEN as u64 {
        return Err(Error::TensorBadShape);
    }
    // The input is int8; any other tensor may be packed (its op decides, see `check_layouts`).
    let len = u64::from(t.len);
    if len != s.elements() && (id == 0 || len != packed_len(s)) {
        return Err(Error::TensorBadLength);
    }
    if !scale_is_valid(t.quant.scale) {
        return Err(Error::TensorBadScale);
    }
    if u64::from(t.offset) + u64::from(t.len) > u64::from(arena_size) {
        return Err(Error::PlanArenaTooSmall);
    }
    Ok(())
}

/// Finite, positive, non-zero, checked on the bits (no float unit needed on the device).
fn scale_is_valid(scale: f32) -> bool {
    let bits = scale.to_bits();
    let negative = bits >> 31 != 0;
    let exponent = (bits >> 23) & 0xff;
    !negative && exponent != 0xff && bits != 0
}

fn same_quant(a: Quant, b: Quant) -> bool {
    a.scale.to_bits() == b.scale.to_bits() && a.zero_point == b.zero_point
}

/// Format 1.2 layouts: the output tensor `out_id` has the length of its op's layout (a packed one
/// also scale 1, zero point 0, and is recorded in `packed`), and every input has the layout the
/// op reads.
fn check_layouts(
    op: &Op<'_>,
    out: &TensorDesc,
    packed: &mut [u32; MAX_TENSORS / 32],
    out_id: usize,
) -> Result<()> {
    let is_packed = |packed: &[u32; MAX_TENSORS / 32], t: usize| {
        packed.get(t / 32).is_some_and(|w| w >> (t % 32) & 1 == 1)
    };
    let layout = op.output_layout();
    if u64::from(out.len) != layout.len(out.shape) {
        return Err(Error::TensorBadLength);
    }
    if layout == Layout::Packed {
        if out.quant.scale.to_bits() != 1.0f32.to_bits() || out.quant.zero_point != 0 {
            return Err(Error::OpBadLayout);
        }
        if let Some(w) = packed.get_mut(out_id / 32) {
            *w |= 1 << (out_id % 32);
        }
    }
    let wants_packed = match op {
        Op::BinaryMaxPool2d(_) => true,
        Op::BinaryConv2d(c) | Op::BinaryConv2dSliced(c) => c.input_thresholds.is_empty(),
        Op::BinaryDense(d) => d.input_thresholds.is_empty(),
        _ => false,
    };
    for t in op.inputs().into_iter().flatten() {
        if is_packed(packed, usize::from(t)) != wants_packed {
            return Err(Error::OpBadLayout);
        }
    }
    Ok(())
}

fn check_op(op: &Op<'_>, i: usize, tensors: &Tensors<'_>, out: &TensorDesc) -> Result<()> {
    match op {
        Op::BinaryConv2d(c) => check_binary_conv2d(c, &tensors.input(c.input, i)?, out, false),
        Op::BinaryConv2dSliced(c) => check_binary_conv2d(c, &tensors.input(c.input, i)?, out, true),
        Op::BinaryDense(d) => check_binary_dense(d, &tensors.input(d.input, i)?, out),
        Op::BinaryMaxPool2d(p) => check_pool(p, &tensors.input(p.input, i)?, out),
        Op::Conv2d(c) => check_conv2d(c, &tensors.input(c.input, i)?, out),
        Op::Dense(d) => check_dense(d, &tensors.input(d.input, i)?, out),
        Op::DensePaired(d) => check_dense_paired(d, &tensors.input(d.input, i)?, out),
        Op::MaxPool2d(p) | Op::AvgPool2d(p) => check_pool(p, &tensors.input(p.input, i)?, out),
        Op::GlobalAvgPool { input } => {
            let x = tensors.input(*input, i)?;
            if out.shape
                != (Shape {
                    h: 1,
                    w: 1,
                    c: x.shape.c,
                })
            {
                return Err(Error::OpShapeMismatch);
            }
            if !same_quant(x.quant, out.quant) {
                return Err(Error::OpQuantMismatch);
            }
            Ok(())
        }
        Op::Add(a) => check_add(a, &tensors.input(a.a, i)?, &tensors.input(a.b, i)?, out),
        Op::Reshape { input } => {
            let x = tensors.input(*input, i)?;
            if x.shape.elements() != out.shape.elements() {
                return Err(Error::OpShapeMismatch);
            }
            if !same_quant(x.quant, out.quant) {
                return Err(Error::OpQuantMismatch);
            }
            Ok(())
        }
    }
}

/// Output length of a window along one axis, or `None` if the window does not fit.
pub(crate) fn window_out(input: u16, kernel: u8, stride: u8, pad_a: u8, pad_b: u8) -> Option<u16> {
    if kernel == 0 || stride == 0 {
        return None;
    }
    let padded = u32::from(input) + u32::from(pad_a) + u32::from(pad_b);
    let span = padded.checked_sub(u32::from(kernel))?;
    u16::try_from(span / u32::from(stride) + 1).ok()
}

/// The HW output of a window (kernel, stride, padding) over `x`.
fn window_shape(
    x: Shape,
    kernel: [u8; 2],
    stride: [u8; 2],
    padding: [u8; 4],
) -> Result<(u16, u16)> {
    let [kh, kw] = kernel;
    let [sh, sw] = stride;
    let [pt, pl, pb, pr] = padding;
    let h = window_out(x.h, kh, sh, pt, pb).ok_or(Error::OpBadWindow)?;
    let w = window_out(x.w, kw, sw, pl, pr).ok_or(Error::OpBadWindow)?;
    Ok((h, w))
}

fn check_requant(r: &Requant<'_>, channels: usize) -> Result<()> {
    if r.multipliers.bytes().len() != channels * 4 || r.shifts.len() != channels {
        return Err(Error::OpBadRequantLength);
    }
    for m in r.multipliers.iter() {
        check_multiplier(m)?;
    }
    for s in r.shifts.iter() {
        if !(-31..=30).contains(&s) {
            return Err(Error::OpBadShift);
        }
    }
    Ok(())
}

fn check_multiplier(m: i32) -> Result<()> {
    if m == 0 || m >= 1 << 30 {
        Ok(())
    } else {
        Err(Error::OpBadMultiplier)
    }
}

fn check_act(min: i8, max: i8) -> Result<()> {
    if min > max {
        return Err(Error::OpBadActivationRange);
    }
    Ok(())
}

/// `|bias| + terms · 255 · 128 ≤ i32::MAX` for every channel: with `x − zp ∈ [−255, 255]` and
/// `|w| ≤ 128`, the i32 accumulator of the kernels can then never overflow.
fn check_accumulator(bias: &LeI32s<'_>, terms: u64) -> Result<()> {
    let worst = terms
        .checked_mul(255 * 128)
        .filter(|&w| w <= i32::MAX as u64)
        .ok_or(Error::OpAccumulatorOverflow)?;
    for b in bias.iter() {
        if u64::from(b.unsigned_abs()) + worst > i32::MAX as u64 {
            return Err(Error::OpAccumulatorOverflow);
        }
    }
    Ok(())
}

fn check_weights(weights: &I8s<'_>, expected: u64) -> Result<()> {
    if weights.len() as u64 != expected {
        return Err(Error::OpBadWeightsLength);
    }
    Ok(())
}

fn check_conv2d(c: &Conv2dOp<'_>, x: &TensorDesc, out: &TensorDesc) -> Result<()> {
    let (h, w) = window_shape(x.shape, c.kernel, c.stride, c.padding)?;
    if (out.shape.h, out.shape.w) != (h, w) {
        return Err(Error::OpShapeMismatch);
    }
    let groups = c.groups;
    if groups == 0 || !x.shape.c.is_multiple_of(groups) || !out.shape.c.is_multiple_of(groups) {
        return Err(Error::OpBadGroups);
    }
    let cout = usize::from(out.shape.c);
    let terms = u64::from(c.kernel[0]) * u64::from(c.kernel[1]) * u64::from(x.shape.c / groups);
    check_weights(&c.weights, cout as u64 * terms)?;
    if c.bias.bytes().len() != cout * 4 {
        return Err(Error::OpBadBiasLength);
    }
    check_requant(&c.requant, cout)?;
    check_act(c.act_min, c.act_max)?;
    check_accumulator(&c.bias, terms)
}

fn check_dense(d: &DenseOp<'_>, x: &TensorDesc, out: &TensorDesc) -> Result<()> {
    if out.shape.h != 1 || out.shape.w != 1 {
        return Err(Error::OpShapeMismatch);
    }
    let cout = usize::from(out.shape.c);
    let terms = x.shape.elements();
    check_weights(&d.weights, cout as u64 * terms)?;
    if d.bias.bytes().len() != cout * 4 {
        return Err(Error::OpBadBiasLength);
    }
    check_requant(&d.requant, cout)?;
    check_act(d.act_min, d.act_max)?;
    check_accumulator(&d.bias, terms)
}

/// Format 1.5 (SPEC §3.4): lengths, every byte a symmetric weight, the odd-weight terms equal
/// to the ones recomputed from the weights, and `|bias| + in · 128 · 127 ≤ i32::MAX` (the
/// zero point is folded into the bias, so the sum is over the raw input, `|x·w| ≤ 128·127`).
fn check_dense_paired(d: &DensePairedOp<'_>, x: &TensorDesc, out: &TensorDesc) -> Result<()> {
    if out.shape.h != 1 || out.shape.w != 1 {
        return Err(Error::OpShapeMismatch);
    }
    if d.pad.len() > 3 || d.pad.bytes().iter().any(|&b| b != 0) {
        return Err(Error::OpBadPairedWeight);
    }
    let rows = usize::from(out.shape.c);
    let k = usize::try_from(x.shape.elements()).map_err(|_| Error::OpBadWeightsLength)?;
    let bytes = d.weights.bytes();
    if Some(bytes.len()) != rows.checked_mul(paired_groups(k) * 4) {
        return Err(Error::OpBadWeightsLength);
    }
    if !paired_bytes_ok(bytes, rows, k) {
        return Err(Error::OpBadPairedWeight);
    }
    let chunks = paired_chunks(k);
    if Some(d.odd_terms.bytes().len()) != rows.checked_mul(chunks * 4) {
        return Err(Error::OpBadPairedTerms);
    }
    let mut stored = d.odd_terms.iter();
    for r in 0..rows {
        for c in 0..chunks {
            if stored.next() != paired_odd_term(bytes, rows, k, r, c) {
                return Err(Error::OpBadPairedTerms);
            }
        }
    }
    if d.bias.bytes().len() != rows * 4 {
        return Err(Error::OpBadBiasLength);
    }
    check_requant(&d.requant, rows)?;
    check_act(d.act_min, d.act_max)?;
    let worst = (k as u64).saturating_mul(128 * 127);
    for b in d.bias.iter() {
        if u64::from(b.unsigned_abs()).saturating_add(worst) > i32::MAX as u64 {
            return Err(Error::OpAccumulatorOverflow);
        }
    }
    Ok(())
}

/// Packed weights of `cout` filters of `taps` pixels of `cin` channels, `[out][taps][words(in)]`,
/// with the bits past `cin` in each pixel's last word 0, as in the packed activations.
fn check_packed_weights(weights: &Bits<'_>, taps: u64, cin: u16, cout: u16) -> Result<()> {
    let words = packed_words(cin) as u64;
    if weights.bytes().len() as u64 != u64::from(cout) * taps * words * 4 {
        return Err(Error::OpBadWeightsLength);
    }
    let tail = cin % 32;
    if tail != 0 && words > 0 {
        let mask = !0u32 << tail;
        for (i, word) in weights.bytes().chunks_exact(4).enumerate() {
            let last = (i as u64 + 1).is_multiple_of(words);
            let w = u32::from_le_bytes(word.try_into().unwrap_or([0; 4]));
            if last && w & mask != 0 {
                return Err(Error::OpBadWeightBits);
            }
        }
    }
    Ok(())
}

/// Bit-sliced weights (SPEC §3.3): `[ceil(out/32)][taps][32·words(in)]` words, word
/// `(g, tap, c)` holding bit `j` = the sign of filter `32g + j` at `(tap, c)`; the words of the
/// padding channels `c ≥ cin` are 0, and so are the bits of the filters past `cout` in the last
/// group.
fn check_sliced_weights(weights: &Bits<'_>, taps: u64, cin: u16, cout: u16) -> Result<()> {
    let lanes = packed_words(cin) as u64 * 32;
    let groups = packed_words(cout) as u64;
    if weights.bytes().len() as u64 != groups * taps * lanes * 4 {
        return Err(Error::OpBadWeightsLength);
    }
    let last_group = u64::from(cout).saturating_sub(1) / 32;
    let used = cout % 32;
    let filter_mask = if used == 0 { !0u32 } else { !(!0u32 << used) };
    // Group by group, tap by tap, channel lane by lane (no divisions per word).
    let per_group = usize::try_from(taps * lanes).unwrap_or(usize::MAX).max(1);
    let lanes = usize::try_from(lanes).unwrap_or(usize::MAX).max(1);
    for (group, words) in weights.bytes().chunks(per_group * 4).enumerate() {
        let filters = if group as u64 == last_group {
            filter_mask
        } else {
            !0
        };
        for tap in words.chunks(lanes * 4) {
            for (channel, word) in tap.chunks_exact(4).enumerate() {
                let w = u32::from_le_bytes(word.try_into().unwrap_or([0; 4]));
                let allowed = if channel >= usize::from(cin) {
                    0
                } else {
                    filters
                };
                if w & !allowed != 0 {
                    return Err(Error::OpBadWeightBits);
                }
            }
        }
    }
    Ok(())
}

/// The parts binary conv and dense share: the input thresholds, flip flags and the output stage
/// of `cout` filters of `taps` pixels of `cin` channels (the weights are checked by the caller).
fn check_binary_common(
    input_thresholds: &LeI32s<'_>,
    flip: &I8s<'_>,
    output: &BinaryOutput<'_>,
    taps: u64,
    cin: u16,
    cout: u16,
) -> Result<()> {
    let n = input_thresholds.len();
    if !input_thresholds.bytes().len().is_multiple_of(4)
        || (n != 0 && n != 1 && n != usize::from(cin))
    {
        return Err(Error::OpBadThresholds);
    }
    let cout = usize::from(cout);
    if flip.len() != cout || flip.bytes().iter().any(|&f| f > 1) {
        return Err(Error::OpBadThresholds);
    }
    // K = taps · cin products per output; p ≤ K, and `bias ± K` must fit the i32 accumulator.
    let k = taps * u64::from(cin);
    if k > i32::MAX as u64 / 2 {
        return Err(Error::OpAccumulatorOverflow);
    }
    match output {
        BinaryOutput::Packed { thresholds } => {
            if thresholds.bytes().len() != cout * 4 {
                return Err(Error::OpBadThresholds);
            }
        }
        BinaryOutput::Int8 {
            bias,
            requant,
            act_min,
            act_max,
        } => {
            if bias.bytes().len() != cout * 4 {
                return Err(Error::OpBadBiasLength);
            }
            check_requant(requant, cout)?;
            check_act(*act_min, *act_max)?;
            for b in bias.iter() {
                if u64::from(b.unsigned_abs()) + k > i32::MAX as u64 {
                    return Err(Error::OpAccumulatorOverflow);
                }
            }
        }
    }
    Ok(())
}

fn check_binary_conv2d(
    c: &BinaryConv2dOp<'_>,
    x: &TensorDesc,
    out: &TensorDesc,
    sliced: bool,
) -> Result<()> {
    let (h, w) = window_shape(x.shape, c.kernel, c.stride, c.padding)?;
    if (out.shape.h, out.shape.w) != (h, w) {
        return Err(Error::OpShapeMismatch);
    }
    let taps = u64::from(c.kernel[0]) * u64::from(c.kernel[1]);
    if sliced {
        check_sliced_weights(&c.weights, taps, x.shape.c, out.shape.c)?;
    } else {
        check_packed_weights(&c.weights, taps, x.shape.c, out.shape.c)?;
    }
    check_binary_common(
        &c.input_thresholds,
        &c.flip,
        &c.output,
        taps,
        x.shape.c,
        out.shape.c,
    )
}

fn check_binary_dense(d: &BinaryDenseOp<'_>, x: &TensorDesc, out: &TensorDesc) -> Result<()> {
    if out.shape.h != 1 || out.shape.w != 1 {
        return Err(Error::OpShapeMismatch);
    }
    let taps = u64::from(x.shape.h) * u64::from(x.shape.w);
    check_packed_weights(&d.weights, taps, x.shape.c, out.shape.c)?;
    check_binary_common(
        &d.input_thresholds,
        &d.flip,
        &d.output,
        taps,
        x.shape.c,
        out.shape.c,
    )
}

fn check_pool(p: &PoolOp, x: &TensorDesc, out: &TensorDesc) -> Result<()> {
    let [kh, kw] = p.kernel;
    let [pt, pl, pb, pr] = p.padding;
    // Every window must contain a real cell (max needs a winner, average a non-zero count).
    if pt >= kh || pb >= kh || pl >= kw || pr >= kw {
        return Err(Error::OpBadWindow);
    }
    let (h, w) = window_shape(x.shape, p.kernel, p.stride, p.padding)?;
    if out.shape != (Shape { h, w, c: x.shape.c }) {
        return Err(Error::OpShapeMismatch);
    }
    if !same_quant(x.quant, out.quant) {
        return Err(Error::OpQuantMismatch);
    }
    Ok(())
}

fn check_add(a: &AddOp, x: &TensorDesc, y: &TensorDesc, out: &TensorDesc) -> Result<()> {
    if x.shape != y.shape || x.shape != out.shape {
        return Err(Error::OpShapeMismatch);
    }
    for m in [a.a_multiplier, a.b_multiplier, a.out_multiplier] {
        check_multiplier(m)?;
    }
    // Input rescales are below 1 (SPEC §4), which keeps `a' + b'` far from i32 overflow.
    if !(-31..=0).contains(&a.a_shift)
        || !(-31..=0).contains(&a.b_shift)
        || !(-31..=30).contains(&a.out_shift)
    {
        return Err(Error::OpBadShift);
    }
    check_act(a.act_min, a.act_max)
}

/// SPEC §5: tensors whose lifetimes overlap (in op steps) must not share arena bytes. This also
/// guarantees that no op's inputs overlap its output.
fn check_plan(tensors: &Tensors<'_>, count: usize, last_use: &[u8; MAX_TENSORS]) -> Result<()> {
    for a in 0..count {
        let ta = tensors.get(a)?;
        let (a_start, a_end) = (
            u64::from(ta.offset),
            u64::from(ta.offset) + u64::from(ta.len),
        );
        let a_last = last_use.get(a).copied().unwrap_or(u8::MAX);
        for b in a + 1..count {
            // b is born no earlier than a; they are alive together iff b is born by a's last use.
            if birth(b) > a_last {
                continue;
            }
            let tb = tensors.get(b)?;
            let (b_start, b_end) = (
                u64::from(tb.offset),
                u64::from(tb.offset) + u64::from(tb.len),
            );
            if a_start < b_end && b_start < a_end {
                return Err(Error::PlanOverlap);
            }
        }
    }
    Ok(())
}

/// SPEC §5.1: op `i`'s scratch (length [`scratch_len_in`] for the blob's minor) lies in the arena at a 4-aligned offset
/// and shares no byte with any tensor alive during op `i`; an op without scratch has offset 0.
#[allow(clippy::too_many_arguments)]
fn check_scratch(
    minor: u8,
    ops: &[u8],
    op_count: u16,
    tensors: &Tensors<'_>,
    count: usize,
    last_use: &[u8; MAX_TENSORS],
    table: &[u8],
    arena_size: u32,
) -> Result<()> {
    let mut rest = ops;
    for (i, offset) in table
        .chunks_exact(4)
        .enumerate()
        .take(usize::from(op_count))
    {
        let (op, tail) = postcard::take_from_bytes::<Op<'_>>(rest)?;
        rest = tail;
        let offset = u32::from_le_bytes(offset.try_into().map_err(|_| Error::PlanBadScratch)?);
        let [a, _] = op.inputs();
        let input = tensors.get(usize::from(a.ok_or(Error::OpBadInput)?))?;
        let output = tensors.get(i + 1)?;
        let len = scratch_len_in(minor, &op, input.shape, output.shape);
        if len == 0 {
            if offset != 0 {
                return Err(Error::PlanBadScratch);
            }
            continue;
        }
        if offset % 4 != 0 {
            return Err(Error::PlanBadScratch);
        }
        let (start, end) = (u64::from(offset), u64::from(offset) + u64::from(len));
        if end > u64::from(arena_size) {
            return Err(Error::PlanArenaTooSmall);
        }
        let step = u8::try_from(i).map_err(|_| Error::OpBadCount)?;
        for t in 0..count {
            let alive = birth(t) <= step && step <= last_use.get(t).copied().unwrap_or(u8::MAX);
            if !alive {
                continue;
            }
            let td = tensors.get(t)?;
            let (t_start, t_end) = (
                u64::from(td.offset),
                u64::from(td.offset) + u64::from(td.len),
            );
            if start < t_end && t_start < end {
                return Err(Error::PlanOverlap);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::tests::tiny;
    use crate::{encode_blob, scratch_len, OpKind, Shape, VERSION_MAJOR};
    use std::vec;
    use std::vec::Vec;

    /// A valid blob's descriptor as editable parts.
    fn parts(blob: &[u8]) -> (&str, u32, Vec<TensorDesc>, Vec<Op<'_>>) {
        let d = validate(blob).unwrap();
        (
            d.name(),
            d.arena_size() as u32,
            d.tensors().collect(),
            d.ops().collect(),
        )
    }

    /// Header (with this major/minor) + body + CRC.
    fn wrap(body: &[u8], major: u8, minor: u8) -> Vec<u8> {
        let mut blob = crate::Header::encode(body.len() as u32).to_vec();
        blob[3] = major;
        blob[4] = minor;
        blob.extend_from_slice(body);
        let crc = crate::crc32(&blob);
        blob.extend_from_slice(&crc.to_le_bytes());
        blob
    }

    fn body(blob: &[u8]) -> &[u8] {
        &blob[HEADER_LEN..blob.len() - CRC_LEN]
    }

    /// Re-encodes the tiny model after `edit` changed its parts; returns the validation result.
    fn edited(
        edit: impl FnOnce(&mut u32, &mut Vec<TensorDesc>, &mut Vec<Op<'static>>),
    ) -> Result<()> {
        let blob: &'static [u8] = tiny().leak();
        let (name, mut arena, mut tensors, mut ops) = parts(blob);
        edit(&mut arena, &mut tensors, &mut ops);
        validate(&encode_blob(name, arena, &tensors, &ops).unwrap()).map(|_| ())
    }

    fn conv<'o>(ops: &'o mut [Op<'static>], i: usize) -> &'o mut crate::Conv2dOp<'static> {
        match &mut ops[i] {
            Op::Conv2d(c) => c,
            _ => panic!("op {i} is not a conv"),
        }
    }

    fn add_op<'o>(ops: &'o mut [Op<'static>]) -> &'o mut crate::AddOp {
        match &mut ops[2] {
            Op::Add(a) => a,
            _ => panic!("op 2 is not an add"),
        }
    }

    #[test]
    fn header_faults() {
        let blob = tiny();
        assert!(validate(&blob).is_ok());
        let mut b = blob.clone();
        b[0] = b'X';
        assert_eq!(validate(&b).unwrap_err(), Error::HeaderBadMagic);
        for major in [0u8, 2, 255] {
            assert_eq!(
                validate(&wrap(body(&blob), major, 0)).unwrap_err(),
                Error::HeaderUnsupportedVersion
            );
        }
        for at in 5..8 {
            let mut b = blob.clone();
            b[at] = 1;
            assert_eq!(validate(&b).unwrap_err(), Error::HeaderBadFlags);
        }
        let mut b = blob.clone();
        b[8] = b[8].wrapping_add(1);
        assert_eq!(validate(&b).unwrap_err(), Error::BodyTruncated);
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(validate(&b).unwrap_err(), Error::BodyTruncated);
        let mut b = blob.clone();
        b.push(0);
        assert_eq!(validate(&b).unwrap_err(), Error::BodyTrailingBytes);
        let mut b = blob.clone();
        let n = b.len();
        b[n - 1] ^= 0x80;
        assert_eq!(validate(&b).unwrap_err(), Error::BodyBadCrc);
        assert_eq!(validate(&blob[..15]).unwrap_err(), Error::HeaderTruncated);
    }

    #[test]
    fn newer_minor_may_append_data_same_minor_may_not() {
        let blob = tiny();
        let mut extended = body(&blob).to_vec();
        extended.push(0); // 1.3: no input normalisation
        extended.extend_from_slice(b"future optional data");
        let newer = wrap(&extended, VERSION_MAJOR, VERSION_MINOR + 1);
        let desc = validate(&newer).unwrap();
        assert_eq!(desc.version(), (1, VERSION_MINOR + 1));
        assert_eq!(desc.extension(), b"future optional data");
        assert_eq!(desc.op_count(), 9);
        // Same data under the current minor: must be consumed exactly.
        let same = wrap(&extended, VERSION_MAJOR, VERSION_MINOR);
        assert_eq!(validate(&same).unwrap_err(), Error::BodyTrailingData);
        // A newer minor without extra data loads too.
        assert!(validate(&wrap(&extended[..body(&blob).len() + 1], VERSION_MAJOR, 7)).is_ok());
    }

    /// Format 1.3's input normalisation: written only when set (older models keep minor and
    /// bytes), read back, and every hostile value or count refused with its error, never a panic.
    #[test]
    fn input_normalization_faults() {
        let blob = tiny();
        assert!(validate(&blob).unwrap().input_normalization().is_none());
        let c = usize::from(validate(&blob).unwrap().input().shape.c);
        let with = |norm: &[u8]| {
            let b = postcard::to_extend(norm, body(&blob).to_vec()).unwrap();
            let w: &'static [u8] = wrap(&b, VERSION_MAJOR, 3).leak();
            validate(w)
        };
        let good: Vec<u8> = (0..c)
            .flat_map(|i| [i as f32, 0.5 + i as f32].map(f32::to_le_bytes))
            .flatten()
            .collect();
        let desc = with(&good).unwrap();
        assert_eq!(desc.version(), (1, 3));
        let norm = desc.input_normalization().unwrap();
        assert_eq!(norm.len(), c);
        assert_eq!(norm.get(c - 1), Some(((c - 1) as f32, c as f32 - 0.5)));
        assert!(with(&[]).unwrap().input_normalization().is_none());
        assert_eq!(
            with(&[&good[..], &good[..8]].concat()).unwrap_err(),
            Error::InputNormBadCount
        );
        assert_eq!(
            with(&good[..good.len() - 1]).unwrap_err(),
            Error::InputNormBadCount
        );
        for bad in [f32::NAN, f32::INFINITY, 0.0, -1.0] {
            let mut b = good.clone();
            b[4..8].copy_from_slice(&bad.to_le_bytes());
            assert_eq!(with(&b).unwrap_err(), Error::InputNormBadValue, "std {bad}");
        }
        let mut b = good.clone();
        b[..4].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
        assert_eq!(with(&b).unwrap_err(), Error::InputNormBadValue);
        // Truncated: the 1.3 field missing entirely, or cut short.
        assert_eq!(
            validate(&wrap(body(&blob), VERSION_MAJOR, 3)).unwrap_err(),
            Error::BodyUnexpectedEnd
        );
        let mut cut = body(&blob).to_vec();
        cut.push(16);
        cut.extend_from_slice(&[0; 3]);
        assert_eq!(
            validate(&wrap(&cut, VERSION_MAJOR, 3)).unwrap_err(),
            Error::BodyUnexpectedEnd
        );
    }

    #[test]
    fn body_decoding_faults() {
        // Raw bodies: (name, arena_size, tensor bytes), op count, ops.
        let t = |s: Shape, off: u32| TensorDesc {
            shape: s,
            quant: crate::Quant {
                scale: 1.0,
                zero_point: 0,
            },
            offset: off,
            len: s.elements() as u32,
        };
        let s = Shape { h: 1, w: 1, c: 4 };
        let table: Vec<u8> = [t(s, 0), t(s, 4)]
            .iter()
            .flat_map(|t| t.to_record())
            .collect();
        let raw = |name: &[u8], table: &[u8], tail: &[u8]| {
            let mut b = vec![name.len() as u8];
            b.extend_from_slice(name);
            b.push(8); // arena_size
            b.push(table.len() as u8);
            b.extend_from_slice(table);
            b.extend_from_slice(tail);
            wrap(&b, 1, 0)
        };
        // Op::Reshape { input: 0 } is tag 6, then varint 0.
        assert!(validate(&raw(b"ok", &table, &[1, 6, 0])).is_ok());
        assert_eq!(
            validate(&raw(b"ok", &table, &[1, 12, 0])).unwrap_err(),
            Error::BodyBadEnum
        );
        assert_eq!(
            validate(&raw(b"ok", &table, &[1, 6])).unwrap_err(),
            Error::BodyUnexpectedEnd
        );
        assert_eq!(
            validate(&raw(b"ok", &table, &[1])).unwrap_err(),
            Error::BodyUnexpectedEnd
        );
        assert_eq!(
            validate(&raw(b"ok", &table, &[2, 6, 0])).unwrap_err(),
            Error::OpBadCount
        );
        assert_eq!(
            validate(&raw(
                b"ok",
                &table,
                &[1, 6, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]
            ))
            .unwrap_err(),
            Error::BodyBadEncoding
        );
        assert_eq!(
            validate(&raw(b"\xff\xfe", &table, &[1, 6, 0])).unwrap_err(),
            Error::BodyBadEncoding
        );
        assert_eq!(
            validate(&raw(&[b'n'; 65], &table, &[1, 6, 0])).unwrap_err(),
            Error::BodyNameTooLong
        );
        assert_eq!(
            validate(&raw(b"ok", &table[..39], &[1, 6, 0])).unwrap_err(),
            Error::TensorTableBadLength
        );
        assert_eq!(
            validate(&raw(b"ok", &table[..20], &[0])).unwrap_err(),
            Error::TensorBadCount
        );
        let mut reserved = table.clone();
        reserved[27] = 1;
        assert_eq!(
            validate(&raw(b"ok", &reserved, &[1, 6, 0])).unwrap_err(),
            Error::TensorBadReserved
        );
    }

    #[test]
    fn tensor_faults() {
        let shape = |t: &mut Vec<TensorDesc>, s: Shape| {
            t[3].shape = s;
            t[3].len = s.elements() as u32;
        };
        assert_eq!(
            edited(|_, t, _| shape(t, Shape { h: 0, w: 3, c: 2 })),
            Err(Error::TensorBadShape)
        );
        assert_eq!(
            edited(|_, t, _| shape(
                t,
                Shape {
                    h: 4096,
                    w: 4096,
                    c: 1
                }
            )),
            Err(Error::TensorBadShape)
        );
        assert_eq!(edited(|_, t, _| t[3].len += 1), Err(Error::TensorBadLength));
        for bad in [0.0f32, -0.5, f32::NAN, f32::INFINITY, -0.0] {
            assert_eq!(
                edited(|_, t, _| t[2].quant.scale = bad),
                Err(Error::TensorBadScale)
            );
        }
        // Too many tensors (and ops).
        assert_eq!(
            edited(|_, t, o| {
                let (t0, op) = (t[5], o[5]);
                t.resize(MAX_TENSORS + 1, t0);
                o.resize(MAX_TENSORS, op);
            }),
            Err(Error::TensorBadCount)
        );
        assert_eq!(edited(|_, t, _| t.push(t[1])), Err(Error::OpBadCount));
        assert_eq!(edited(|a, _, _| *a -= 1), Err(Error::PlanArenaTooSmall));
        assert_eq!(
            edited(|_, t, _| t[9].offset = u32::MAX),
            Err(Error::PlanArenaTooSmall)
        );
    }

    #[test]
    fn op_faults() {
        assert_eq!(
            edited(|_, _, o| conv(o, 1).input = 2),
            Err(Error::OpBadInput)
        );
        assert_eq!(
            edited(|_, _, o| o[8] = Op::GlobalAvgPool { input: 9 }),
            Err(Error::OpBadInput)
        );
        assert_eq!(
            edited(|_, t, _| {
                t[1].shape.h = 2;
                t[1].len = 12;
            }),
            Err(Error::OpShapeMismatch)
        );
        assert_eq!(
            edited(|_, _, o| conv(o, 0).padding = [0; 4]),
            Err(Error::OpShapeMismatch)
        );
        assert_eq!(
            edited(|_, _, o| conv(o, 0).kernel = [0, 2]),
            Err(Error::OpBadWindow)
        );
        assert_eq!(
            edited(|_, _, o| conv(o, 0).stride = [1, 0]),
            Err(Error::OpBadWindow)
        );
        assert_eq!(
            edited(|_, _, o| conv(o, 0).kernel = [5, 2]),
            Err(Error::OpBadWindow)
        );
        assert_eq!(
            edited(|_, _, o| {
                if let Op::MaxPool2d(p) = &mut o[3] {
                    p.padding = [0, 0, 2, 1];
                }
            }),
            Err(Error::OpBadWindow)
        );
        assert_eq!(
            edited(|_, t, _| t[4].quant.zero_point = 9),
            Err(Error::OpQuantMismatch)
        );
        assert_eq!(
            edited(|_, t, _| t[6].quant.scale = 0.5),
            Err(Error::OpQuantMismatch)
        );
        assert_eq!(
            edited(|_, _, o| conv(o, 1).groups = 0),
            Err(Error::OpBadGroups)
        );
        assert_eq!(
            edited(|_, _, o| conv(o, 1).groups = 3),
            Err(Error::OpBadGroups)
        );
        // groups 1 on the depthwise layer: weights now too short for a dense 1×1.
        assert_eq!(
            edited(|_, _, o| conv(o, 1).groups = 1),
            Err(Error::OpBadWeightsLength)
        );
        let short: &'static [u8] = &[1, 2, 3];
        assert_eq!(
            edited(|_, _, o| conv(o, 0).weights = crate::I8s(short)),
            Err(Error::OpBadWeightsLength)
        );
        assert_eq!(
            edited(|_, _, o| conv(o, 0).bias = crate::LeI32s(&short[..0])),
            Err(Error::OpBadBiasLength)
        );
        assert_eq!(
            edited(|_, _, o| conv(o, 0).requant.shifts = crate::I8s(short)),
            Err(Error::OpBadRequantLength)
        );
        let m: &'static [u8] = &[5, 0, 0, 0, 0, 0, 0, 0x40];
        assert_eq!(
            edited(|_, _, o| conv(o, 0).requant.multipliers = crate::LeI32s(m)),
            Err(Error::OpBadMultiplier)
        );
        let neg: &'static [u8] = &[0, 0, 0, 0x80, 0, 0, 0, 0x40];
        assert_eq!(
            edited(|_, _, o| conv(o, 0).requant.multipliers = crate::LeI32s(neg)),
            Err(Error::OpBadMultiplier)
        );
        let s: &'static [u8] = &[31, 0];
        assert_eq!(
            edited(|_, _, o| conv(o, 0).requant.shifts = crate::I8s(s)),
            Err(Error::OpBadShift)
        );
        let s: &'static [u8] = &[0xe0, 0]; // −32
        assert_eq!(
            edited(|_, _, o| conv(o, 0).requant.shifts = crate::I8s(s)),
            Err(Error::OpBadShift)
        );
        assert_eq!(
            edited(|_, _, o| {
                let c = conv(o, 0);
                (c.act_min, c.act_max) = (5, 4);
            }),
            Err(Error::OpBadActivationRange)
        );
        let huge: &'static [u8] = &[0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0];
        assert_eq!(
            edited(|_, _, o| conv(o, 0).bias = crate::LeI32s(huge)),
            Err(Error::OpAccumulatorOverflow)
        );
        assert_eq!(
            edited(|_, _, o| add_op(o).a_shift = 1),
            Err(Error::OpBadShift)
        );
        assert_eq!(
            edited(|_, _, o| add_op(o).out_shift = 31),
            Err(Error::OpBadShift)
        );
        assert_eq!(
            edited(|_, _, o| add_op(o).b_multiplier = 3),
            Err(Error::OpBadMultiplier)
        );
        assert_eq!(edited(|_, _, o| add_op(o).b = 3), Err(Error::OpBadInput));
        assert_eq!(
            edited(|_, _, o| add_op(o).b = 0),
            Err(Error::OpShapeMismatch)
        );
        assert_eq!(
            edited(|_, _, o| {
                let a = add_op(o);
                (a.act_min, a.act_max) = (1, 0);
            }),
            Err(Error::OpBadActivationRange)
        );
        // Dense: output must be [1, 1, n].
        // Dense output must be [1, 1, n] (t7 feeds a reshape, which accepts any 8-element shape).
        assert_eq!(
            edited(|_, t, _| t[7].shape = Shape { h: 1, w: 8, c: 1 }),
            Err(Error::OpShapeMismatch)
        );
        // Global average pool output must be [1, 1, C].
        assert_eq!(
            edited(|_, t, _| {
                t[9].shape = Shape { h: 2, w: 1, c: 1 };
            }),
            Err(Error::OpShapeMismatch)
        );
        assert_eq!(
            edited(|_, _, o| o[5] = Op::Reshape { input: 3 }),
            Err(Error::OpShapeMismatch)
        );
        // Pools, reshape and global average pool keep the input quantization.
        for t in [4usize, 5, 6, 9] {
            assert_eq!(
                edited(|_, ts, _| ts[t].quant.zero_point ^= 1),
                Err(Error::OpQuantMismatch)
            );
        }
        let kinds: Vec<OpKind> = parts(tiny().leak()).3.iter().map(|o| o.kind()).collect();
        assert_eq!(kinds[8], OpKind::GlobalAvgPool);
    }

    /// Format 1.1's scratch table: one 4-aligned offset per op, inside the arena, clear of every
    /// tensor alive during its op; 1.0 blobs (no table) still load.
    #[test]
    fn scratch_table_faults() {
        let blob = tiny();
        let desc = validate(&blob).unwrap();
        assert!(desc.has_scratch_plan());
        let (name, arena, tensors, ops) = parts(&blob);
        let offsets: Vec<u32> = (0..ops.len())
            .map(|i| desc.scratch_offset(i).unwrap())
            .collect();
        assert_eq!(desc.scratch_offset(ops.len()), None);
        let check = |arena: u32, offsets: &[u32]| {
            validate(
                &crate::encode_blob_with_scratch(name, arena, &tensors, &ops, offsets).unwrap(),
            )
            .map(|_| ())
        };
        assert_eq!(check(arena, &offsets), Ok(()));
        // The conv (op 0) has an im2col buffer; the add (op 2) has none.
        let conv = offsets[0];
        assert!(scratch_len(&ops[0], tensors[0].shape, tensors[1].shape) > 0);
        assert_eq!(offsets[2], 0);
        let with = |i: usize, v: u32| {
            let mut o = offsets.clone();
            o[i] = v;
            o
        };
        assert_eq!(check(arena, &with(2, 4)), Err(Error::PlanBadScratch));
        assert_eq!(check(arena, &with(0, conv + 2)), Err(Error::PlanBadScratch));
        assert_eq!(check(arena, &offsets[1..]), Err(Error::PlanBadScratch));
        // Over op 0's input or output (in a large enough arena).
        let big = arena + 256;
        assert_eq!(
            check(big, &with(0, tensors[1].offset)),
            Err(Error::PlanOverlap)
        );
        assert_eq!(
            check(big, &with(0, tensors[0].offset)),
            Err(Error::PlanOverlap)
        );
        assert_eq!(check(big, &with(0, arena.next_multiple_of(4))), Ok(()));
        assert_eq!(
            check(arena, &with(0, arena.next_multiple_of(4))),
            Err(Error::PlanArenaTooSmall)
        );
        // The same model without a table is a valid 1.0 blob.
        assert!(
            !validate(&encode_blob(name, arena, &tensors, &ops).unwrap())
                .unwrap()
                .has_scratch_plan()
        );
    }

    /// Re-encodes the binary model (format 1.2, no scratch table) after `edit`.
    fn binary_edited(
        edit: impl FnOnce(&mut u32, &mut Vec<TensorDesc>, &mut Vec<Op<'static>>),
    ) -> Result<()> {
        let blob: &'static [u8] = crate::builder::tests::binary_model().leak();
        let (name, mut arena, mut tensors, mut ops) = parts(blob);
        edit(&mut arena, &mut tensors, &mut ops);
        validate(&encode_blob(name, arena, &tensors, &ops).unwrap()).map(|_| ())
    }

    /// The binary model with its second conv (37 → 33 channels, 2×2 taps) bit-sliced
    /// (format 1.4), re-encoded after `edit` of the sliced weight bytes.
    fn sliced_edited(edit: impl FnOnce(&mut Vec<u8>)) -> Result<Vec<u8>> {
        let blob: &'static [u8] = crate::builder::tests::binary_model().leak();
        let (name, arena, tensors, mut ops) = parts(blob);
        let c = *bconv(&mut ops, 2);
        let (taps, cin, cout, wc) = (4, 37, 33, 2);
        let row = |o: usize, t: usize, ch: usize| {
            c.weights.word((o * taps + t) * wc + ch / 32).unwrap() >> (ch % 32) & 1
        };
        let mut w = Vec::new();
        for g in 0..2 {
            for t in 0..taps {
                for ch in 0..32 * wc {
                    let mut word = 0u32;
                    for j in 0..32 {
                        if 32 * g + j < cout && ch < cin {
                            word |= row(32 * g + j, t, ch) << j;
                        }
                    }
                    w.extend_from_slice(&word.to_le_bytes());
                }
            }
        }
        edit(&mut w);
        let w: &'static [u8] = w.leak();
        ops[2] = Op::BinaryConv2dSliced(crate::BinaryConv2dOp {
            weights: crate::Bits(w),
            ..c
        });
        let blob = encode_blob(name, arena, &tensors, &ops).unwrap();
        validate(&blob)?;
        Ok(blob)
    }

    #[test]
    fn sliced_faults() {
        let blob = sliced_edited(|_| {}).unwrap();
        assert_eq!(validate(&blob).unwrap().version(), (1, 4));
        // A 1.3 blob cannot hold the sliced conv: its tag is unknown there.
        assert_eq!(
            validate(&wrap(body(&blob), VERSION_MAJOR, 3)).unwrap_err(),
            Error::BodyBadEnum
        );
        // Length: 2 groups · 4 taps · 64 channel lanes words.
        assert_eq!(
            sliced_edited(|w| w.truncate(w.len() - 4)).unwrap_err(),
            Error::OpBadWeightsLength
        );
        assert_eq!(
            sliced_edited(|w| w.extend_from_slice(&[0; 4])).unwrap_err(),
            Error::OpBadWeightsLength
        );
        // The words of padding channels (37..64) are 0; so are the bits of filters 33..64.
        let word = |g: usize, t: usize, ch: usize| 4 * ((g * 4 + t) * 64 + ch);
        assert_eq!(
            sliced_edited(|w| w[word(0, 1, 37)] = 1).unwrap_err(),
            Error::OpBadWeightBits
        );
        assert_eq!(
            sliced_edited(|w| w[word(1, 3, 63) + 3] = 0x80).unwrap_err(),
            Error::OpBadWeightBits
        );
        assert_eq!(
            sliced_edited(|w| w[word(1, 2, 5)] |= 2).unwrap_err(),
            Error::OpBadWeightBits
        );
        // Filter 32 (bit 0 of group 1) and channel 36 are real.
        assert!(sliced_edited(|w| w[word(1, 2, 36)] ^= 1).is_ok());
        assert!(sliced_edited(|w| w[word(0, 0, 0) + 3] ^= 0x80).is_ok());
    }

    /// A paired dense (format 1.5) of k = 517 inputs (two chunks, a padded last group) to 7 rows
    /// (blocks of 4, 2, 1), re-encoded after `edit` of its weight bytes, odd terms and bias.
    fn paired_edited(
        edit: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>, &mut Vec<u8>),
    ) -> Result<Vec<u8>> {
        let (k, rows) = (517usize, 7u16);
        let mut b = crate::ModelBuilder::new(
            "paired",
            Shape { h: 1, w: 11, c: 47 },
            crate::Quant {
                scale: 0.05,
                zero_point: -128,
            },
        );
        let weights: Vec<i8> = (0..k * rows as usize)
            .map(|i| (((i * 37 + 11) % 255) as i32 - 127) as i8)
            .collect();
        let x = b.input();
        b.dense_paired(
            x,
            crate::DenseSpec {
                out_features: rows,
                weights,
                weight_scales: vec![0.01],
                bias: (0..rows as i32).map(|r| r * 1000 - 3000).collect(),
                output: crate::Quant {
                    scale: 0.1,
                    zero_point: 3,
                },
                activation: crate::Activation::None,
            },
        )
        .unwrap();
        let blob: &'static [u8] = b.finish().unwrap().leak();
        assert_eq!(validate(blob).unwrap().version(), (1, 5));
        let (name, arena, tensors, mut ops) = parts(blob);
        let Op::DensePaired(d) = ops[0] else {
            panic!("op 0 is not a paired dense")
        };
        let (mut w, mut t, mut bias) = (
            d.weights.bytes().to_vec(),
            d.odd_terms.bytes().to_vec(),
            d.bias.bytes().to_vec(),
        );
        edit(&mut w, &mut t, &mut bias);
        ops[0] = Op::DensePaired(crate::DensePairedOp {
            weights: I8s(w.leak()),
            odd_terms: LeI32s(t.leak()),
            bias: LeI32s(bias.leak()),
            ..d
        });
        let blob = encode_blob(name, arena, &tensors, &ops).unwrap();
        validate(&blob)?;
        Ok(blob)
    }

    #[test]
    fn dense_paired_faults() {
        let blob = paired_edited(|_, _, _| {}).unwrap();
        // A 1.4 blob cannot hold the paired dense: its tag is unknown there.
        assert_eq!(
            validate(&wrap(body(&blob), VERSION_MAJOR, 4)).unwrap_err(),
            Error::BodyBadEnum
        );
        // 7 rows · 130 groups · 4 bytes; 7 rows · 2 chunks odd terms; 7 biases.
        let len = Err(Error::OpBadWeightsLength);
        assert_eq!(
            paired_edited(|w, _, _| w.truncate(w.len() - 4)).map(|_| ()),
            len
        );
        assert_eq!(paired_edited(|w, _, _| w.push(128)).map(|_| ()), len);
        let terms = Err(Error::OpBadPairedTerms);
        assert_eq!(
            paired_edited(|_, t, _| t.truncate(t.len() - 4)).map(|_| ()),
            terms
        );
        assert_eq!(paired_edited(|_, t, _| t.extend([0; 4])).map(|_| ()), terms);
        // One odd term off by one (row 5, chunk 1; the words are row-major).
        assert_eq!(
            paired_edited(|_, t, _| t[4 * (5 * 2 + 1)] ^= 1).map(|_| ()),
            terms
        );
        // A 0 even byte (w = −128), an odd 0x80, nonzero padding (k = 517: group 129 holds
        // input 516 and three padded positions; the last row is its own block).
        let bad = Err(Error::OpBadPairedWeight);
        assert_eq!(paired_edited(|w, _, _| w[8] = 0).map(|_| ()), bad);
        assert_eq!(paired_edited(|w, _, _| w[9] = 0x80).map(|_| ()), bad);
        let last = 6 * 130 * 4 + 129 * 4;
        assert_eq!(paired_edited(|w, _, _| w[last + 1] = 1).map(|_| ()), bad);
        assert_eq!(paired_edited(|w, _, _| w[last + 2] = 129).map(|_| ()), bad);
        // The writer aligned the weights to 4 from the blob's start.
        let desc = validate(&blob).unwrap();
        let Some(Op::DensePaired(d)) = desc.ops().next() else {
            panic!("op 0 is not a paired dense")
        };
        assert_eq!(
            (d.weights.bytes().as_ptr() as usize - blob.as_ptr() as usize) % 4,
            0
        );
        // Changing an even weight keeps the odd terms right: a valid (different) layer.
        assert!(paired_edited(|w, _, _| w[last] = 1).is_ok());
        // An odd weight changes its chunk's term.
        assert_eq!(paired_edited(|w, _, _| w[1] ^= 2).map(|_| ()), terms);
        assert_eq!(
            paired_edited(|_, _, b| b.truncate(24)).map(|_| ()),
            Err(Error::OpBadBiasLength)
        );
        assert_eq!(
            paired_edited(|_, _, b| b[..4].copy_from_slice(&i32::MAX.to_le_bytes())).map(|_| ()),
            Err(Error::OpAccumulatorOverflow)
        );
    }

    fn bconv<'o>(ops: &'o mut [Op<'static>], i: usize) -> &'o mut crate::BinaryConv2dOp<'static> {
        match &mut ops[i] {
            Op::BinaryConv2d(c) => c,
            _ => panic!("op {i} is not a binary conv"),
        }
    }

    #[test]
    fn binary_faults() {
        assert_eq!(binary_edited(|_, _, _| {}), Ok(()));
        // A 1.1 blob cannot hold binary ops: their tags are unknown there.
        let blob = crate::builder::tests::binary_model();
        assert_eq!(
            validate(&wrap(body(&blob), VERSION_MAJOR, 1)).unwrap_err(),
            Error::BodyBadEnum
        );
        // Lengths of the packed tensors.
        assert_eq!(
            binary_edited(|a, t, _| {
                t[1].len = t[1].shape.elements() as u32;
                *a += 4096;
            }),
            Err(Error::TensorBadLength)
        );
        assert_eq!(
            binary_edited(|_, t, _| t[4].len = 24),
            Err(Error::TensorBadLength)
        );
        // Packed tensors are scale 1, zero point 0.
        assert_eq!(
            binary_edited(|_, t, _| t[2].quant.zero_point = 1),
            Err(Error::OpBadLayout)
        );
        // A packed-input conv reading the int8 input, an int8 op reading a packed tensor, a
        // binary pool of an int8 tensor.
        assert_eq!(
            binary_edited(|_, _, o| {
                let c = bconv(o, 0);
                c.input_thresholds = crate::LeI32s(&[]);
            }),
            Err(Error::OpBadLayout)
        );
        assert_eq!(
            binary_edited(|_, t, o| {
                o[4] = Op::GlobalAvgPool { input: 3 };
                t[5].shape = Shape { h: 1, w: 1, c: 33 };
                t[5].len = 33;
                t[5].quant = t[3].quant;
            }),
            Err(Error::OpBadLayout)
        );
        assert_eq!(
            binary_edited(|_, _, o| {
                if let Op::BinaryMaxPool2d(p) = &mut o[1] {
                    p.input = 0;
                }
            }),
            Err(Error::OpBadLayout)
        );
        // Thresholds and flips.
        let two: &'static [u8] = &[0; 8];
        assert_eq!(
            binary_edited(|_, _, o| bconv(o, 0).input_thresholds = crate::LeI32s(two)),
            Err(Error::OpBadThresholds)
        );
        assert_eq!(
            binary_edited(|_, _, o| bconv(o, 0).flip = crate::I8s(&two[..3])),
            Err(Error::OpBadThresholds)
        );
        let flips: &'static [u8] = &[2; 37];
        assert_eq!(
            binary_edited(|_, _, o| bconv(o, 0).flip = crate::I8s(flips)),
            Err(Error::OpBadThresholds)
        );
        assert_eq!(
            binary_edited(|_, _, o| {
                bconv(o, 2).output = crate::BinaryOutput::Packed {
                    thresholds: crate::LeI32s(two),
                }
            }),
            Err(Error::OpBadThresholds)
        );
        // Weights: length, and bits past the 37 channels of conv 2's input.
        assert_eq!(
            binary_edited(|_, _, o| {
                let w = bconv(o, 2).weights.0;
                bconv(o, 2).weights = crate::Bits(&w[4..]);
            }),
            Err(Error::OpBadWeightsLength)
        );
        assert_eq!(
            binary_edited(|_, _, o| {
                let mut w = bconv(o, 2).weights.0.to_vec();
                w[7] |= 0x80; // word 1 (channels 32..63) of tap 0: bit 31 is channel 63
                bconv(o, 2).weights = crate::Bits(w.leak());
            }),
            Err(Error::OpBadWeightBits)
        );
        // Window and shapes.
        assert_eq!(
            binary_edited(|_, _, o| bconv(o, 2).stride = [1, 1]),
            Err(Error::OpShapeMismatch)
        );
        assert_eq!(
            binary_edited(|_, _, o| {
                if let Op::BinaryMaxPool2d(p) = &mut o[1] {
                    p.padding = [2, 0, 0, 0];
                }
            }),
            Err(Error::OpBadWindow)
        );
        // The int8 output stage: bias length, requantization, accumulator bound.
        assert_eq!(
            binary_edited(|_, _, o| {
                if let Op::BinaryDense(d) = &mut o[3] {
                    if let crate::BinaryOutput::Int8 { bias, .. } = &mut d.output {
                        *bias = crate::LeI32s(two);
                    }
                }
            }),
            Err(Error::OpBadBiasLength)
        );
        let huge: &'static [u8] = &[
            0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            binary_edited(|_, _, o| {
                if let Op::BinaryDense(d) = &mut o[3] {
                    if let crate::BinaryOutput::Int8 { bias, .. } = &mut d.output {
                        *bias = crate::LeI32s(huge);
                    }
                }
            }),
            Err(Error::OpAccumulatorOverflow)
        );
        assert_eq!(
            binary_edited(|_, _, o| {
                if let Op::BinaryDense(d) = &mut o[3] {
                    if let crate::BinaryOutput::Int8 { act_max, .. } = &mut d.output {
                        *act_max = -128;
                    }
                }
            }),
            Err(Error::OpBadActivationRange)
        );
    }

    #[test]
    fn plan_faults() {
        // Two tensors alive together (the add's inputs t1, t2) made to share bytes.
        assert_eq!(
            edited(|_, t, _| t[2].offset = t[1].offset),
            Err(Error::PlanOverlap)
        );
        // An op's output overlapping its own input.
        assert_eq!(
            edited(|_, t, _| t[9].offset = t[8].offset + 1),
            Err(Error::PlanOverlap)
        );
        // The output must survive to the end: nothing born later may reuse it (here: none), and the
        // input must survive op 0.
        assert_eq!(
            edited(|_, t, _| t[1].offset = t[0].offset),
            Err(Error::PlanOverlap)
        );
    }
}
