//! Links `memory.x` (with embassy-rp's boot loader section) and embeds the blob
//! (`TINYKD_BLOB`, else the built-in `TINYKD_MODEL`, default `int8-student`) with its test
//! subset and the host's outputs (`tinykd-board-build`).
fn main() {
    tinykd_board_build::link_memory_x("memory.x", &["link-rp.x", "defmt.x"]);
    tinykd_board_build::embed_one("int8-student", 100);
    println!("cargo:rerun-if-changed=build.rs");
}
