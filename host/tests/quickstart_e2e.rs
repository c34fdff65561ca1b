//! The whole train half on a few hundred images: teacher → student alone → KD student → QAT →
//! export → host run of the blob → the same blob in QEMU, identical output bytes.
//!
//! Needs Fashion-MNIST (`dataset-fashion-mnist`) and `qemu-system-arm` (`tools/install-tools.sh`).

use std::path::PathBuf;

use tinykd::quickstart::{check_prerequisites, run, QuickstartError, QuickstartOptions};
use tinykd::train::ProgressMode;

#[test]
fn tiny_quickstart_runs_end_to_end_and_board_matches_host() {
    let out = std::env::temp_dir().join(format!("tinykd-quickstart-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let options = QuickstartOptions {
        teacher_epochs: 1,
        student_epochs: 1,
        qat_epochs: 1,
        train_limit: Some(512),
        test_limit: Some(300),
        qemu_samples: Some(100),
        progress: ProgressMode::Never,
        ..QuickstartOptions::quick(out.clone())
    };
    let report = run(&options).unwrap_or_else(|e| panic!("quickstart failed: {e}"));
    println!("{}", tinykd::quickstart::render(&report));
    assert_eq!(report.identical_samples, 100);
    assert!(
        report.blob_bytes <= 32 * 1024,
        "blob of {} bytes",
        report.blob_bytes
    );
    let qemu = report.rows.last().expect("rows");
    let host = &report.rows[report.rows.len() - 2];
    assert_eq!((qemu.correct, qemu.images), (host.correct, host.images));
    for file in [
        "summary.json",
        "report.md",
        "student-kd-qat-seed0/student.tkd",
        "student-kd-qat-seed0/quant.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn missing_board_is_reported_with_a_fix() {
    let options = QuickstartOptions {
        board: PathBuf::from("/nonexistent/board"),
        ..QuickstartOptions::quick(std::env::temp_dir().join("tinykd-unused"))
    };
    match check_prerequisites(&options) {
        Err(QuickstartError::Missing { what, fix }) => {
            assert!(
                what.contains("board") || what.contains("qemu") || what.contains("Fashion"),
                "{what}"
            );
            assert!(!fix.is_empty());
        }
        other => panic!("expected a Missing error, got {other:?}"),
    }
}
