//! Puts `memory.x` where cortex-m-rt's `link.x` finds it, passes the linker script, and writes
//! the static buffer sizes (overridable at build time) into `$OUT_DIR/capacity.rs`.
//!
//! The link arguments live here rather than in `.cargo/config.toml` so that the firmware links
//! the same way whichever directory cargo is started from (config files are found from the
//! current directory, not from the manifest).
use std::{env, fs, path::PathBuf};

/// Default capacity of the blob buffer: the largest model this firmware loads.
const DEFAULT_BLOB_CAP: usize = 1024 * 1024;
/// Default capacity of the activation arena: the largest `arena_size` a blob may state.
const DEFAULT_ARENA_CAP: usize = 1024 * 1024;
/// Default capacity of one input sample and of one output, in bytes.
const DEFAULT_IO_CAP: usize = 64 * 1024;

fn capacity(var: &str, default: usize) -> usize {
    println!("cargo:rerun-if-env-changed={var}");
    match env::var(var) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={text:?} is not a byte count")),
        Err(_) => default,
    }
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x into OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");

    let blob = capacity("TINYKD_BLOB_CAP", DEFAULT_BLOB_CAP);
    let arena = capacity("TINYKD_ARENA_CAP", DEFAULT_ARENA_CAP);
    let io = capacity("TINYKD_IO_CAP", DEFAULT_IO_CAP);
    let code = format!(
        "/// Bytes of the static blob buffer (`TINYKD_BLOB_CAP` at build time).\n\
         pub const BLOB_CAP: usize = {blob};\n\
         /// Bytes of the static activation arena (`TINYKD_ARENA_CAP` at build time).\n\
         pub const ARENA_CAP: usize = {arena};\n\
         /// Bytes of one input sample / one output (`TINYKD_IO_CAP` at build time).\n\
         pub const IO_CAP: usize = {io};\n"
    );
    fs::write(out.join("capacity.rs"), code).expect("write capacity.rs");
    replay_inputs(&out);
}

/// The replay example's blob and recording (`src/bin/replay.rs`): the files named by
/// `TINYKD_STREAM_BLOB` / `TINYKD_STREAM` (a trained model, a real recorded test stream), or by
/// default the seeded conv1d test model and a synthetic stream, exactly as
/// `tests/tests/stream_replay.rs` builds them for the host side. Writes `stream.tkd`,
/// `stream.tkr` and `replay.rs` (the arena size and window length as constants).
fn replay_inputs(out: &std::path::Path) {
    let file = |var: &str| {
        println!("cargo:rerun-if-env-changed={var}");
        env::var_os(var).map(|p| {
            println!("cargo:rerun-if-changed={}", PathBuf::from(&p).display());
            fs::read(&p).unwrap_or_else(|e| panic!("{var}={p:?}: {e}"))
        })
    };
    let blob = file("TINYKD_STREAM_BLOB")
        .unwrap_or_else(|| tinykd_test_models::conv1d_stream_model().blob);
    let stream = file("TINYKD_STREAM").unwrap_or_else(|| {
        let (values, labels) = tinykd_test_models::synthetic_stream(
            tinykd_test_models::DEFAULT_STREAM_STEPS,
            tinykd_test_models::DEFAULT_STREAM_SEED,
        );
        tinykd_format::recording::encode(3, &values, &labels).expect("consistent stream")
    });
    let desc = tinykd_format::validate(&blob).expect("TINYKD_STREAM_BLOB: invalid blob");
    let rec = tinykd_format::recording::Recording::from_bytes(&stream)
        .expect("TINYKD_STREAM: invalid recording");
    assert_eq!(
        rec.channels(),
        u32::from(desc.input().shape.c),
        "the recording's channels differ from the model's input channels"
    );
    fs::write(out.join("stream.tkd"), &blob).expect("write stream.tkd");
    fs::write(out.join("stream.tkr"), &stream).expect("write stream.tkr");
    let code = format!(
        "/// Arena bytes of the embedded model.\n\
         pub const ARENA: usize = {};\n\
         /// Values of one window (the ring buffer).\n\
         pub const WINDOW_LEN: usize = {};\n\
         /// Channels per sample.\n\
         pub const CHANNELS: usize = {};\n",
        desc.arena_size(),
        desc.input().len,
        desc.input().shape.c
    );
    fs::write(out.join("replay.rs"), code).expect("write replay.rs");
}
