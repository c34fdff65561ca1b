//! A recorded sensor stream replayed sample by sample through `tinykd_device::Stream`, on the
//! host and on an emulated Cortex-M4F (`boards/qemu-mps2-an386`, binary `replay`): every
//! window's prediction and output bytes must be identical (issue 7).
//!
//! Environment (the firmware's build script reads the same two variables, so both sides always
//! replay the same bytes):
//! - `TINYKD_STREAM_BLOB`: a blob (e.g. the trained HAPT student with its input normalisation);
//!   default: the seeded conv1d test model `tinykd_test_models::conv1d_stream_model`;
//! - `TINYKD_STREAM`: a recording (`.tkr`, `tinykd_format::recording`); default: the synthetic
//!   stream `tinykd_test_models::synthetic_stream`;
//! - `TINYKD_INSN_PLUGIN`: the QEMU insn-count plugin (default
//!   `tools/insn-plugin/libinsncount.so` when built): then the test also prints the
//!   instructions per window;
//! - `TINYKD_SKIP_QEMU=1`: host half only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tinykd_device::{Model, Stream};
use tinykd_format::recording::{self, Recording};
use tinykd_tests::repo_root;

fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The blob and the recording, as the firmware's build script picks them.
fn inputs() -> (Vec<u8>, Vec<u8>) {
    let read = |var: &str| {
        std::env::var_os(var)
            .map(|p| std::fs::read(&p).unwrap_or_else(|e| panic!("{var}={p:?}: {e}")))
    };
    let blob = read("TINYKD_STREAM_BLOB")
        .unwrap_or_else(|| tinykd_test_models::conv1d_stream_model().blob);
    let stream = read("TINYKD_STREAM").unwrap_or_else(|| {
        let (values, labels) = tinykd_test_models::synthetic_stream(
            tinykd_test_models::DEFAULT_STREAM_STEPS,
            tinykd_test_models::DEFAULT_STREAM_SEED,
        );
        recording::encode(3, &values, &labels).expect("consistent stream")
    });
    (blob, stream)
}

/// The firmware's per-window lines, computed with `tinykd-device` on this machine.
fn host_lines(blob: &[u8], stream: &[u8]) -> Vec<String> {
    let model = Model::from_bytes(blob).expect("valid blob");
    let rec = Recording::from_bytes(stream).expect("valid recording");
    let mut ring = vec![0i8; model.input_len()];
    let mut arena = vec![0u8; model.arena_size()];
    let mut s = Stream::new(model, &mut ring, &mut arena).expect("stream");
    let mut sample = vec![0f32; rec.channels() as usize];
    let mut lines = Vec::new();
    for i in 0..rec.steps() {
        let label = rec.step(i, &mut sample).expect("step");
        if let Some(p) = s.push(&sample).expect("push") {
            let hex: String = p
                .output
                .iter()
                .map(|b| format!("{:02x}", *b as u8))
                .collect();
            let label = label.map_or("-".to_string(), |l| l.to_string());
            lines.push(format!(
                "window {} sample {} class {} label {label} out {hex}",
                p.window, p.sample, p.class
            ));
        }
    }
    lines
}

fn build_replay() -> PathBuf {
    let board = repo_root().join("boards/qemu-mps2-an386");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--bin", "replay"])
        .current_dir(&board)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the replay firmware failed");
    repo_root().join("target/boards/thumbv7em-none-eabihf/release/replay")
}

/// Boots the firmware with `mode` under a timeout; returns stdout + stderr.
fn qemu(elf: &Path, mode: &str, plugin: Option<&Path>) -> String {
    let mut cmd = Command::new("timeout");
    cmd.arg("120").arg(repo_root().join("tools/qemu-runner.sh"));
    cmd.arg(elf).arg(mode);
    if let Some(p) = plugin {
        cmd.env("INSN_PLUGIN", p);
    }
    let out = cmd.output().expect("run tools/qemu-runner.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "replay {mode} failed ({}):\n{text}",
        out.status
    );
    text
}

fn insns(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("insns: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("insns line")
}

#[test]
fn host_and_board_agree_on_every_window() {
    let (blob, stream) = inputs();
    let host = host_lines(&blob, &stream);
    assert!(!host.is_empty(), "the recording is shorter than one window");
    let mut outs: Vec<&str> = host
        .iter()
        .filter_map(|l| l.split(" out ").nth(1))
        .collect();
    outs.sort_unstable();
    outs.dedup();
    assert!(
        outs.len() * 2 > host.len(),
        "degenerate model: {} distinct outputs",
        outs.len()
    );

    if std::env::var_os("TINYKD_SKIP_QEMU").is_some_and(|v| v == "1") {
        eprintln!("TINYKD_SKIP_QEMU=1: board run skipped");
        return;
    }
    let elf = build_replay();
    let started = std::time::Instant::now();
    let text = qemu(&elf, "replay", None);
    let wall: Duration = started.elapsed();
    let board: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("window "))
        .map(str::to_string)
        .collect();
    for (i, (h, b)) in host.iter().zip(&board).enumerate() {
        assert_eq!(h, b, "window {i}: host and board differ");
    }
    assert_eq!(host.len(), board.len(), "window counts differ");
    let summary = text
        .lines()
        .find(|l| l.starts_with("replay: "))
        .unwrap_or("");
    let ram = text.lines().find(|l| l.starts_with("ram: ")).unwrap_or("");
    report(&format!(
        "stream replay: {} windows host vs QEMU mps2-an386: identical predictions and output bytes ({summary}; {ram}), QEMU {:.2} s",
        host.len(),
        wall.as_secs_f64()
    ));

    let plugin = std::env::var_os("TINYKD_INSN_PLUGIN")
        .map(PathBuf::from)
        .or_else(|| {
            Some(repo_root().join("tools/insn-plugin/libinsncount.so")).filter(|p| p.is_file())
        });
    if let Some(plugin) = plugin {
        let load = insns(&qemu(&elf, "load__", Some(&plugin)));
        let all = insns(&qemu(&elf, "bench_", Some(&plugin)));
        let rec = Recording::from_bytes(&stream).expect("valid recording");
        report(&format!(
            "stream replay: {} samples, {} windows: {} instructions in all, {} per window (hop's pushes + one inference), {} per sample",
            rec.steps(),
            host.len(),
            all - load,
            (all - load) / host.len() as u64,
            (all - load) / u64::from(rec.steps())
        ));
    }
}
