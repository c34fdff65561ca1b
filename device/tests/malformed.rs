//! Malformed blobs: every one must be an `Err` from `Model::from_bytes`, and nothing may panic.
//! Blobs that still load (a corruption can hit a weight byte and be re-sealed with a valid CRC)
//! must run to completion on an arena of the size they state.

mod common;

use common::{all_ops_model, binary_model, Rng};
use tinykd_device::{Error, Model};
use tinykd_format::{crc32, encode_blob, validate, Error as F, TensorDesc, HEADER_LEN};

/// Loads `blob`; if it loads, runs it on a deterministic input with an arena of the stated size
/// (bounded so that a corrupted arena size cannot exhaust the test machine).
fn load_and_run(blob: &[u8], rng: &mut Rng) -> Result<(), Error> {
    let model = Model::from_bytes(blob)?;
    let input = rng.i8s(model.input_len());
    if model.arena_size() > 1 << 24 {
        let mut small = [0u8; 16];
        assert_eq!(model.run(&input, &mut small), Err(Error::RunArenaTooSmall));
        return Ok(());
    }
    let mut arena = vec![0u8; model.arena_size()];
    let out = model
        .run(&input, &mut arena)
        .expect("a validated model runs");
    assert_eq!(out.len(), model.output_len());
    Ok(())
}

/// Recomputes the CRC (and keeps `body_len`), so the corruption reaches the decoder.
fn reseal(blob: &mut [u8]) {
    let n = blob.len() - 4;
    let crc = crc32(&blob[..n]);
    blob[n..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn the_valid_blob_loads_and_runs() {
    let blob = all_ops_model();
    let mut rng = Rng(1);
    load_and_run(&blob, &mut rng).unwrap();
}

#[test]
fn every_truncation_is_an_error() {
    let blob = all_ops_model();
    let mut rng = Rng(2);
    for len in 0..blob.len() {
        let e = load_and_run(&blob[..len], &mut rng).unwrap_err();
        assert!(matches!(e, Error::Blob(_)), "len {len}: {e:?}");
    }
    // Truncated bodies re-sealed with a consistent body_len and CRC: the decoder must notice.
    for body_len in 0..blob.len() - HEADER_LEN - 4 {
        let mut b = blob[..HEADER_LEN + body_len].to_vec();
        b[8..12].copy_from_slice(&(body_len as u32).to_le_bytes());
        b.extend_from_slice(&crc32(&b).to_le_bytes());
        let e = load_and_run(&b, &mut rng).unwrap_err();
        assert!(matches!(e, Error::Blob(_)), "body_len {body_len}: {e:?}");
    }
}

#[test]
fn ten_thousand_random_corruptions() {
    let blob = all_ops_model();
    let mut rng = Rng(0xC0FF_EE00);
    let (mut rejected, mut loaded, mut resealed_rejected) = (0, 0, 0);
    for i in 0..10_000 {
        let mut b = blob.clone();
        let flips = if i % 2 == 0 {
            1
        } else {
            2 + rng.below(8) as usize
        };
        for _ in 0..flips {
            let at = rng.below(b.len() as u64) as usize;
            let v = (rng.next() as u8).max(1);
            b[at] ^= v; // always a change
        }
        // Raw: the CRC (or the header) must catch every change.
        assert!(load_and_run(&b, &mut rng).is_err(), "corruption {i} loaded");
        rejected += 1;
        // Re-sealed: the structural checks must catch what matters, and anything that loads runs.
        if b[..4] == blob[..4] {
            reseal(&mut b);
            match load_and_run(&b, &mut rng) {
                Ok(()) => loaded += 1,
                Err(_) => resealed_rejected += 1,
            }
        }
    }
    eprintln!("raw: {rejected} rejected; re-sealed: {loaded} loaded and ran, {resealed_rejected} rejected");
    assert_eq!(rejected, 10_000);
    // Most re-sealed corruptions hit weights (which load); the rest must be refused.
    assert!(
        loaded > 0 && resealed_rejected > 0,
        "{loaded} {resealed_rejected}"
    );
}

#[test]
fn wrong_magic_and_versions() {
    let blob = all_ops_model();
    let mut b = blob.clone();
    b[1] = b'X';
    reseal(&mut b);
    assert_eq!(
        Model::from_bytes(&b).unwrap_err(),
        Error::Blob(F::HeaderBadMagic)
    );
    let mut b = blob.clone();
    b[3] = 2;
    reseal(&mut b);
    assert_eq!(
        Model::from_bytes(&b).unwrap_err(),
        Error::Blob(F::HeaderUnsupportedVersion)
    );
    // Newer minor with appended optional data: loads and runs.
    let mut b = blob[..blob.len() - 4].to_vec();
    b[4] = tinykd_format::VERSION_MINOR + 1;
    b.push(0); // format 1.3's input normalisation field: none
    b.extend_from_slice(&[0xAA; 13]);
    let body_len = (b.len() - HEADER_LEN) as u32;
    b[8..12].copy_from_slice(&body_len.to_le_bytes());
    b.extend_from_slice(&crc32(&b).to_le_bytes());
    let mut rng = Rng(3);
    load_and_run(&b, &mut rng).unwrap();
    // The same bytes claiming the current minor: refused.
    b[4] = tinykd_format::VERSION_MINOR;
    reseal(&mut b);
    assert_eq!(
        Model::from_bytes(&b).unwrap_err(),
        Error::Blob(F::BodyTrailingData)
    );
}

/// Descriptor edits re-encoded with a valid CRC: inconsistent shapes and out-of-range offsets.
#[test]
fn edited_descriptors_are_refused() {
    let blob = all_ops_model();
    let desc = validate(&blob).unwrap();
    let tensors: Vec<TensorDesc> = desc.tensors().collect();
    let ops: Vec<_> = desc.ops().collect();
    let arena = desc.arena_size() as u32;
    let check = |arena: u32, t: &[TensorDesc], want: F| {
        let b = encode_blob(desc.name(), arena, t, &ops).unwrap();
        assert_eq!(Model::from_bytes(&b).unwrap_err(), Error::Blob(want));
    };
    for id in 0..tensors.len() {
        // Out-of-range offsets.
        let mut t = tensors.clone();
        t[id].offset = arena - t[id].len + 1;
        check(arena, &t, F::PlanArenaTooSmall);
        t[id].offset = u32::MAX;
        check(arena, &t, F::PlanArenaTooSmall);
        // Inconsistent shapes: one more row (and a matching length), or a lying length.
        let mut t = tensors.clone();
        t[id].shape.h += 1;
        t[id].len = t[id].shape.elements() as u32;
        let b = encode_blob(desc.name(), u32::MAX, &t, &ops).unwrap();
        let e = Model::from_bytes(&b).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Blob(F::OpShapeMismatch | F::OpBadWeightsLength | F::PlanOverlap)
            ),
            "tensor {id}: {e:?}"
        );
        let mut t = tensors.clone();
        t[id].len -= 1;
        check(arena, &t, F::TensorBadLength);
    }
    // The arena one byte short of the plan's peak.
    check(arena - 1, &tensors, F::PlanArenaTooSmall);
}

/// The binary model (format 1.2): every truncation and every raw corruption is refused; re-sealed
/// corruptions either are refused or load and run; targeted edits name their fault.
#[test]
fn binary_blobs_malformed() {
    let blob = binary_model();
    let mut rng = Rng(0xB1_0BAD);
    load_and_run(&blob, &mut rng).unwrap();
    for len in 0..blob.len() {
        assert!(load_and_run(&blob[..len], &mut rng).is_err(), "len {len}");
    }
    let (mut loaded, mut refused) = (0, 0);
    for i in 0..5_000 {
        let mut b = blob.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len() as u64) as usize;
            b[at] ^= (rng.next() as u8).max(1);
        }
        assert!(load_and_run(&b, &mut rng).is_err(), "corruption {i} loaded");
        if b[..4] == blob[..4] {
            reseal(&mut b);
            match load_and_run(&b, &mut rng) {
                Ok(()) => loaded += 1,
                Err(_) => refused += 1,
            }
        }
    }
    assert!(loaded > 0 && refused > 0, "{loaded} {refused}");
    // A binary op in a blob that claims format 1.1: an unknown op kind there.
    let mut b = blob.clone();
    b[4] = 1;
    reseal(&mut b);
    assert_eq!(
        Model::from_bytes(&b).unwrap_err(),
        Error::Blob(F::BodyBadEnum)
    );
    // A packed tensor given its int8 length, and an int8 op fed a packed tensor.
    let desc = validate(&blob).unwrap();
    let tensors: Vec<TensorDesc> = desc.tensors().collect();
    let ops: Vec<_> = desc.ops().collect();
    let mut t = tensors.clone();
    t[2].len = t[2].shape.elements() as u32;
    let b = encode_blob(desc.name(), u32::MAX, &t, &ops).unwrap();
    assert_eq!(
        Model::from_bytes(&b).unwrap_err(),
        Error::Blob(F::TensorBadLength)
    );
    let mut o = ops.clone();
    o[2] = tinykd_format::Op::GlobalAvgPool { input: 2 };
    let mut t = tensors.clone();
    t[3].shape = t[2].shape;
    t[3].shape.h = 1;
    t[3].shape.w = 1;
    t[3].len = u32::from(t[3].shape.c);
    let b = encode_blob(desc.name(), u32::MAX, &t, &o).unwrap();
    assert_eq!(
        Model::from_bytes(&b).unwrap_err(),
        Error::Blob(F::OpBadLayout)
    );
}
