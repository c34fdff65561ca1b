//! Links `memory.x` and embeds the blob (`TINYKD_BLOB`, else the built-in `TINYKD_MODEL`,
//! default `int8-student`) with its test subset and the host's outputs (`tinykd-board-build`);
//! for `examples/accel_stream.rs`, the streaming model (`TINYKD_STREAM_BLOB`, default the conv1d
//! stream test model).
fn main() {
    tinykd_board_build::link_memory_x("memory.x", &["defmt.x"]);
    // The stream note first: tools/board-sizes.sh reads the firmware's blob from the last note.
    tinykd_board_build::embed_stream();
    tinykd_board_build::embed_one("int8-student", 100);
    println!("cargo:rerun-if-changed=build.rs");
}
