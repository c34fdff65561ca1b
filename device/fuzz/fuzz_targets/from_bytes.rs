//! Fuzz target: `Model::from_bytes` on arbitrary bytes, then — for every blob that validates —
//! `run` on an arena of exactly the stated size (bounded at 1 MiB so a corrupted size cannot
//! exhaust memory). Any panic, out-of-bounds access or hang is a bug: validation promises that
//! a validated model runs.
//!
//! Random mutations almost never keep the CRC-32 right, which would leave everything after the
//! CRC check unexplored. So the first byte picks a mode: odd = take the rest as is (header and CRC
//! checks), even = fix `body_len` and the CRC of the rest first (descriptor, op and plan checks,
//! and the kernels). Seeds are written by `cargo run -p tinykd-device --example fuzz_seed`,
//! each prefixed with both mode bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinykd_device::Model;
use tinykd_format::{crc32, CRC_LEN, HEADER_LEN};

const MAX_ARENA: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut blob = rest.to_vec();
    if mode & 1 == 0 && blob.len() >= HEADER_LEN + CRC_LEN {
        let body_end = blob.len() - CRC_LEN;
        let body_len = (body_end - HEADER_LEN) as u32;
        blob[8..12].copy_from_slice(&body_len.to_le_bytes());
        let crc = crc32(&blob[..body_end]);
        blob[body_end..].copy_from_slice(&crc.to_le_bytes());
    }
    let Ok(model) = Model::from_bytes(&blob) else {
        return;
    };
    if model.arena_size() > MAX_ARENA || model.input_len() > MAX_ARENA {
        return;
    }
    // A deterministic, input-dependent sample: the blob's bytes, cycled.
    let input: Vec<i8> = (0..model.input_len())
        .map(|i| blob[i % blob.len()] as i8)
        .collect();
    let mut arena = vec![0u8; model.arena_size()];
    let out = model
        .run(&input, &mut arena)
        .expect("a validated model must run on an arena of its stated size");
    assert_eq!(out.len(), model.output_len());
    // One byte short must be refused, not overrun.
    if let Some(short) = model.arena_size().checked_sub(1) {
        assert!(model.run(&input, &mut arena[..short]).is_err());
    }
});
