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
}
