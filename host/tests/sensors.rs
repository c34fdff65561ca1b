//! Sensor nodes end to end through the `tinykd` binary (issue 7): a 1-D CNN teacher on all six
//! HAPT channels, a student that reads only the accelerometer distilled from it with SK-KD, its
//! blob carrying the accelerometer's normalization and running identically on the host and in
//! QEMU, and a recorded stream for the device's streaming API; bad sensor configs are named
//! errors.
//!
//! Needs the HAPT files of `tools/setup-sensor-data.sh` (tools/install-tools.sh runs it).
//! `TINYKD_SKIP_QEMU=1` skips the board run.

mod common;
use common::*;

const CONFIGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/sensors");
const HAPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/sensors/hapt");

fn hapt_dir() -> String {
    assert!(
        std::path::Path::new(HAPT).join("s01_r1.csv").is_file(),
        "no HAPT data in {HAPT}: run `bash tools/setup-sensor-data.sh`"
    );
    format!("data.dir=\"{HAPT}\"")
}

fn config(name: &str) -> String {
    format!("{CONFIGS}/{name}.toml")
}

#[test]
fn an_accelerometer_student_distils_from_an_imu_teacher_and_runs_on_the_board() {
    let dir = hapt_dir();
    let small = [
        "--limit",
        "512",
        "--test-limit",
        "128",
        "--set",
        "data.batch_size=32",
        "--set",
        &dir,
    ];
    let d = tempfile::tempdir().unwrap();
    let teacher = d.path().join("teacher");
    let t = teacher.to_str().unwrap();
    let teacher_cfg = config("hapt-teacher");
    let mut args = vec![
        "train",
        "--config",
        &teacher_cfg,
        "--out",
        t,
        "--epochs",
        "1",
    ];
    args.extend(small);
    ok(&args);

    let student = d.path().join("student");
    let s = student.to_str().unwrap();
    let cfg = config("hapt-student");
    let mut args = vec![
        "distill",
        "--teacher",
        t,
        "--config",
        &cfg,
        "--out",
        s,
        "--epochs",
        "1",
        "--set",
        "distill.method.method=\"sk\"",
    ];
    args.extend(small);
    ok(&args);
    let epoch = &lines_of_kind(&student, "epoch")[0];
    assert!(epoch["sk"].as_f64().is_some_and(f64::is_finite), "{epoch}");
    // The channel names are saved as indices of the dataset's channels.
    let saved = std::fs::read_to_string(student.join("config.toml")).unwrap();
    let saved: toml::Value = toml::from_str(&saved).unwrap();
    assert_eq!(
        saved["model"]["channels"],
        toml::Value::Array(vec![0.into(), 1.into(), 2.into()]),
        "{saved}"
    );

    let q = d.path().join("student-int8");
    let qs = q.to_str().unwrap();
    ok(&[
        "quantize",
        "--student",
        s,
        "--out",
        qs,
        "--qat-epochs",
        "0",
        "--set",
        "data.train_limit=512",
        "--set",
        "data.test_limit=128",
    ]);
    let rec = q.join("stream.tkr");
    ok(&[
        "export",
        qs,
        "--limit",
        "128",
        "--recording",
        rec.to_str().unwrap(),
        "--recording-steps",
        "640",
    ]);

    // The blob takes [1, 128, 3] windows and carries the accelerometer's training statistics.
    let blob = std::fs::read(q.join("student.tkd")).unwrap();
    let desc = tinykd_format::validate(&blob).unwrap();
    let input = desc.tensor(tinykd_format::TensorId(0)).unwrap();
    assert_eq!((input.shape.h, input.shape.w, input.shape.c), (1, 128, 3));
    let norm = desc
        .input_normalization()
        .expect("a sensor blob is normalized");
    let stats = tinykd::data::sensors::channel_stats(
        tinykd::data::DatasetKind::Hapt,
        std::path::Path::new(HAPT),
        &Default::default(),
    )
    .unwrap();
    for (c, &want) in stats.iter().take(3).enumerate() {
        assert_eq!(norm.get(c), Some(want), "channel {c}");
    }
    // HAPT's accelerometer is in g: x (along the body) averages near 1 g.
    assert!(stats[0].0 > 0.5 && stats[0].0 < 1.2, "{stats:?}");

    // The recording: raw readings of the student's three channels.
    let bytes = std::fs::read(&rec).unwrap();
    let recording = tinykd_format::recording::Recording::from_bytes(&bytes).unwrap();
    assert_eq!((recording.steps(), recording.channels()), (640, 3));

    let samples = q.join("test.tks");
    let blob_path = q.join("student.tkd");
    let mut args = vec![
        "run-blob",
        blob_path.to_str().unwrap(),
        "--samples",
        samples.to_str().unwrap(),
    ];
    let qemu = std::env::var_os("TINYKD_SKIP_QEMU").is_none_or(|v| v != "1");
    if qemu {
        args.push("--qemu");
    }
    let out = ok(&args);
    println!("{out}");
    if qemu {
        assert!(
            out.contains("identical: all 128 samples, every output byte"),
            "{out}"
        );
    }
}

#[test]
fn bad_sensor_configs_are_named_errors() {
    let dir = hapt_dir();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x");
    let o = out.to_str().unwrap();
    let cfg = config("hapt-student");
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--config", &cfg, "--out", o, "--set", &dir];
        args.extend(extra);
        fails(&args)
    };

    let e = train(&["--set", "model.channels=[\"acc_x\", \"acc_y\", \"mag_z\"]"]);
    assert!(
        e.contains("model.channels") && e.contains("\"mag_z\"") && e.contains("5: gyro_z"),
        "{e}"
    );
    let e = train(&["--set", "model.channels=[0, 1, 9]"]);
    assert!(e.contains('9'), "{e}");
    let e = train(&["--set", "model.in_channels=2"]);
    assert!(e.contains("3 channels selected but in_channels = 2"), "{e}");
    let e = train(&["--set", "data.window=64"]);
    assert!(
        e.contains("the dataset gives 3x1x64 samples, the network expects 3x1x128"),
        "{e}"
    );
    let e = train(&["--set", "data.window_stride=0"]);
    assert!(e.contains("data.window_stride"), "{e}");
    let e = train(&["--set", "data.test_subjects=[]"]);
    assert!(
        e.contains("data.test_subjects") && e.contains("at least one"),
        "{e}"
    );
    let e = train(&["--set", "data.test_subjects=[99]"]);
    assert!(e.contains("[\"99\"]") && e.contains("no windows"), "{e}");

    // The ResNet teacher is for images; a window is not an image.
    let e = fails(&["train", "--out", o, "--set", "data.dataset=\"hapt\""]);
    assert!(e.contains("the ResNet teacher is for images"), "{e}");
    // A window length means nothing for images.
    let e = fails(&["train", "--out", o, "--set", "data.window=64"]);
    assert!(e.contains("data.window"), "{e}");
}
