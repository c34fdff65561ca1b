//! HSAKD through the `tinykd` binary: the teacher's auxiliaries are trained once (backbone
//! frozen) and reused by every student; a student distils from them on rotated views; asking for
//! other auxiliary settings in the same directory is an error.

mod common;
use common::*;

const SMALL: [&str; 8] = [
    "--limit",
    "256",
    "--test-limit",
    "100",
    "--set",
    "data.batch_size=32",
    "--set",
    "train.progress=never",
];

/// `tinykd distill` of the default student with HSAKD (auxiliaries trained for 1 epoch).
fn distill(t: &str, out: &std::path::Path, epochs: &str, extra: &[&str]) -> std::process::Output {
    let o = out.to_str().unwrap();
    let mut args = vec!["distill", "--teacher", t, "--out", o, "--epochs", epochs];
    args.extend(SMALL);
    args.extend([
        "--set",
        "distill.method.method=hsakd",
        "--set",
        "distill.method.aux_epochs=1",
    ]);
    args.extend(extra);
    tinykd(&args)
}

#[test]
fn teacher_auxiliaries_are_trained_once_and_students_distil_from_them() {
    let d = tempfile::tempdir().unwrap();
    let teacher = d.path().join("teacher");
    let t = teacher.to_str().unwrap();
    train_tiny_teacher(t, &SMALL);

    let first = d.path().join("first");
    let out = distill(t, &first, "1", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("training the teacher's 3 auxiliaries"),
        "{stdout}"
    );
    let aux = teacher.join("hsakd-aux");
    let heads = aux.join("heads.bpk");
    assert!(heads.is_file());
    // The auxiliaries trained on the joint labels (the summed cross-entropy of the three heads is
    // logged; eight steps are too few to assert learning, which docs/results.md measures).
    let aux_epoch = lines_of_kind(&aux, "epoch")[0].clone();
    let aux_ce = aux_epoch["aux_ce"].as_f64().unwrap();
    assert!(aux_ce.is_finite() && aux_ce > 0.0, "{aux_epoch}");
    let epoch = lines_of_kind(&first, "epoch")[0].clone();
    for term in ["hsakd_aux", "hsakd_final"] {
        assert!(
            epoch[term]
                .as_f64()
                .is_some_and(|v| v.is_finite() && v > 0.0),
            "no `{term}` in {epoch}"
        );
    }

    // A second student loads them and, with the same seed, trains to the same weights.
    let written = std::fs::metadata(&heads).unwrap().modified().unwrap();
    let second = d.path().join("second");
    let out = distill(t, &second, "1", &[]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("training the teacher's"));
    assert_eq!(
        std::fs::metadata(&heads).unwrap().modified().unwrap(),
        written
    );
    let again = lines_of_kind(&second, "epoch")[0].clone();
    for key in [
        "loss",
        "hsakd_aux",
        "hsakd_final",
        "test_accuracy",
        "test_loss",
    ] {
        assert_eq!(epoch[key], again[key], "{key}: {epoch} vs {again}");
    }

    // Other auxiliary settings in the same directory: a named error, nothing retrained.
    let out = distill(
        t,
        &d.path().join("third"),
        "1",
        &["--set", "distill.method.aux_epochs=2"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("distill.method.teacher_aux"), "{err}");
    // ... and a directory of its own trains a new set there.
    let other = d.path().join("aux2");
    let set = format!("distill.method.teacher_aux=\"{}\"", other.display());
    let out = distill(
        t,
        &d.path().join("fourth"),
        "1",
        &[
            "--set",
            "distill.method.aux_epochs=2",
            "--set",
            &set,
            "--set",
            "distill.method.student_maps=[2]",
            "--set",
            "distill.method.teacher_maps=[2]",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines_of_kind(&other, "epoch").len(), 2);

    // A student interrupted after its first epoch resumes with the teacher's auxiliaries
    // reloaded and its own restored: the second epoch is the uninterrupted one's exactly.
    let whole = d.path().join("whole");
    let out = distill(t, &whole, "2", &[]);
    assert!(out.status.success());
    let last = lines_of_kind(&whole, "epoch")[1].clone();
    std::fs::remove_dir_all(whole.join("checkpoints/epoch-0002")).unwrap();
    ok(&["distill", "--resume", whole.to_str().unwrap()]);
    let resumed = lines_of_kind(&whole, "epoch");
    let again = resumed.last().unwrap();
    assert_eq!(resumed.len(), 3, "{resumed:?}");
    for key in [
        "loss",
        "hsakd_aux",
        "hsakd_final",
        "test_accuracy",
        "test_loss",
    ] {
        assert_eq!(last[key], again[key], "{key}: {last} vs {again}");
    }
}
