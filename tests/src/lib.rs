//! # tinykd-tests
//!
//! End-to-end checks of tinykd across its crates; the tests themselves are in `tests/`
//! (`qemu_e2e.rs`: the same blob on the host and on the emulated Cortex-M4F board, byte for
//! byte). This library holds what they share: the deterministic random-weight int8 CNN and the
//! students of `tinykd-test-models` (re-exported; the firmware build scripts embed the same
//! models), random sample sets for the CNN, and a MAC count read back from a blob.
//!
//! Everything is seeded and uses its own tiny generator, so the model and the inputs are the
//! same on every machine and with every version of every dependency: an instruction count
//! measured today can be compared with one measured next month.

use std::path::{Path, PathBuf};

use tinykd::deploy::SampleSet;
pub use tinykd_test_models::{
    binary_student, count_macs, int8_student, random_inputs, Rng, TestModel, CLASSES, INPUT,
    STUDENT_INPUT,
};

/// The repository root (the parent of this crate's folder).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf()
}

/// The end-to-end test CNN (`tinykd_test_models::e2e_cnn`): 16×16×3 input, 10 classes, every
/// op kind the exporter emits, seeded random weights.
pub fn test_model() -> TestModel {
    tinykd_test_models::e2e_cnn()
}

/// `n` random int8 inputs for the test CNN, with random labels.
///
/// Each sample has its own random level per channel (think brightness and colour) plus
/// pixel noise, saturating at the int8 range now and then. I.i.d. noise alone would average
/// out in the pooling layers and give nearly the same logits, hence the same class, for every
/// sample; with per-sample levels the predictions spread over the classes.
pub fn random_samples(n: usize, seed: u64) -> SampleSet {
    let (inputs, labels) = random_inputs(INPUT, CLASSES, n, seed);
    SampleSet::new(INPUT.elements() as usize, inputs, labels).expect("consistent lengths")
}
