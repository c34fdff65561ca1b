//! The same blob on the host and on an emulated Cortex-M4F, compared byte for byte.
//!
//! A small int8 CNN with random weights (every op kind the exporter emits: a strided convolution
//! with asymmetric padding, a depthwise convolution, 1×1 convolutions, a residual add, max and
//! padded average pooling, dense layers) runs over 200 random inputs twice: with
//! `tinykd-device` on this machine, and in the `boards/qemu-mps2-an386` firmware under
//! `qemu-system-arm`. Every output byte and every predicted class must be identical.
//!
//! Environment:
//! - `TINYKD_FIRMWARE`: a prebuilt firmware ELF; otherwise the test builds it (into
//!   `target/boards`, see `tinykd::deploy::build_firmware`).
//! - `TINYKD_INSN_PLUGIN`: the QEMU insn-count plugin; by default
//!   `tools/insn-plugin/libinsncount.so` when it has been built. With it, the test also prints
//!   the instructions per inference and per MAC.
//! - `TINYKD_SKIP_QEMU=1`: skip the board runs (say, on a machine without QEMU); without it a
//!   missing QEMU fails the test with an explanation.

use std::path::PathBuf;
use std::sync::OnceLock;

use tinykd::deploy::{
    build_firmware, count_instructions, run_blob_host, run_blob_qemu, DeployError, FirmwareStatus,
    QemuOptions, SampleSet,
};
use tinykd_format::validate;
use tinykd_tests::{random_samples, repo_root, test_model};

/// Samples compared between the host and the board.
const SAMPLES: usize = 200;

/// Prints a result line even when libtest captures the test's output (it captures only the
/// `print!` family), so the figures show up in every `cargo test` log, CI's included.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn skip_qemu() -> bool {
    if std::env::var_os("TINYKD_SKIP_QEMU").is_some_and(|v| v == "1") {
        eprintln!("TINYKD_SKIP_QEMU=1: board runs skipped");
        return true;
    }
    false
}

/// The firmware ELF: `TINYKD_FIRMWARE`, or built once per test binary.
fn firmware() -> PathBuf {
    static FIRMWARE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FIRMWARE
        .get_or_init(|| match std::env::var_os("TINYKD_FIRMWARE") {
            Some(path) => Ok(PathBuf::from(path)),
            None => build_firmware(&repo_root().join("boards/qemu-mps2-an386"))
                .map_err(|e| e.to_string()),
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn qemu_options() -> QemuOptions {
    let mut options = QemuOptions::new(firmware());
    options.insn_plugin = match std::env::var_os("TINYKD_INSN_PLUGIN") {
        Some(path) => Some(PathBuf::from(path)),
        None => Some(repo_root().join("tools/insn-plugin/libinsncount.so")).filter(|p| p.is_file()),
    };
    options
}

#[test]
fn host_and_board_agree_on_every_output_byte() {
    let model = test_model();
    let samples = random_samples(SAMPLES, 0x5EED);
    let host = run_blob_host(&model.blob, &samples).expect("host run");
    assert_eq!(host.len(), SAMPLES);

    // The comparison means something only if the outputs are spread out: a model that
    // saturated every logit would agree trivially.
    let mut distinct_bytes: Vec<i8> = host.outputs.clone();
    distinct_bytes.sort_unstable();
    distinct_bytes.dedup();
    let mut distinct_classes = host.classes.clone();
    distinct_classes.sort_unstable();
    distinct_classes.dedup();
    assert!(
        distinct_bytes.len() >= 64 && distinct_classes.len() >= 4,
        "degenerate test model: {} distinct output values, {} distinct classes",
        distinct_bytes.len(),
        distinct_classes.len()
    );

    if skip_qemu() {
        return;
    }
    let options = qemu_options();
    let (board, insns) = if options.insn_plugin.is_some() {
        let (count, run) =
            count_instructions(&model.blob, &samples, &options).unwrap_or_else(|e| panic!("{e}"));
        (run, Some(count))
    } else {
        let run = run_blob_qemu(&model.blob, &samples, &options).unwrap_or_else(|e| panic!("{e}"));
        (run, None)
    };

    if let Some(i) = host.first_difference(&board.predictions) {
        panic!(
            "host and board differ at sample {i}: host class {:?} output {:?}, board class {:?} output {:?}",
            host.classes.get(i),
            host.output(i),
            board.predictions.classes.get(i),
            board.predictions.output(i)
        );
    }
    assert_eq!(host, board.predictions);
    report(&format!(
        "e2e: compared {} samples host vs QEMU mps2-an386: identical ({} output bytes, {} distinct classes, {}/{} correct on random labels), QEMU {:.2} s",
        board.predictions.len(),
        board.predictions.outputs.len(),
        distinct_classes.len(),
        board.predictions.correct,
        board.predictions.len(),
        board.wall.as_secs_f64()
    ));
    let desc = validate(&model.blob).expect("valid");
    report(&format!(
        "e2e: model: {} ops, {} MACs per inference, blob {} bytes, arena {} bytes",
        desc.op_count(),
        model.macs,
        model.blob.len(),
        desc.arena_size()
    ));
    if let Some(count) = insns {
        let per_inference = count.per_inference();
        report(&format!(
            "e2e: instructions per inference (Cortex-M4, QEMU insn count): {per_inference:.1} \
             ({} with {} samples, {} with none), {:.3} per MAC",
            count.with_samples,
            count.samples,
            count.without_samples,
            per_inference / model.macs as f64
        ));
        assert!(count.with_samples > count.without_samples);
    }
}

#[test]
fn board_refuses_a_corrupted_blob() {
    let mut blob = test_model().blob;
    let samples = random_samples(2, 1);
    // Flip one weight bit in the middle of the body: the CRC no longer matches.
    let mid = blob.len() / 2;
    blob[mid] ^= 0x10;
    assert!(matches!(
        run_blob_host(&blob, &samples),
        Err(DeployError::BlobRejected(_))
    ));
    if skip_qemu() {
        return;
    }
    match run_blob_qemu(&blob, &samples, &QemuOptions::new(firmware())) {
        Err(DeployError::FirmwareFailed {
            status: FirmwareStatus::BadBlob,
            code: Some(4),
            ..
        }) => {}
        other => panic!("expected the firmware to refuse the blob, got {other:?}"),
    }
}

#[test]
fn board_refuses_samples_of_the_wrong_length() {
    let blob = test_model().blob;
    let samples = SampleSet::new(5, vec![0; 10], vec![0, 1]).expect("consistent");
    assert!(matches!(
        run_blob_host(&blob, &samples),
        Err(DeployError::InputLenMismatch { .. })
    ));
    if skip_qemu() {
        return;
    }
    match run_blob_qemu(&blob, &samples, &QemuOptions::new(firmware())) {
        Err(DeployError::FirmwareFailed {
            status: FirmwareStatus::BadSamples,
            ..
        }) => {}
        other => panic!("expected the firmware to refuse the samples, got {other:?}"),
    }
}
