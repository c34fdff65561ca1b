//! Passes esp-hal's linker script (it holds the ESP32-C3's memory map, so this board has no
//! `memory.x`) and embeds the blob (`TINYKD_BLOB`, else the built-in `TINYKD_MODEL`, default
//! `int8-student`) with its test subset and the host's outputs (`tinykd-board-build`).
fn main() {
    println!("cargo:rustc-link-arg=-Tlinkall.x");
    println!("cargo:rustc-link-arg=-Tdefmt.x");
    tinykd_board_build::embed_one("int8-student", 100);
    println!("cargo:rerun-if-changed=build.rs");
}
