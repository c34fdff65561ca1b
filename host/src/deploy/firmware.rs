//! Building a board's firmware with a nested cargo.
//!
//! A board crate is its own workspace with its own target (`.cargo/config.toml`), so cargo must
//! be started *in* the board's folder: configuration is found from the working directory, not
//! from the manifest. Its `target-dir` is `target/boards`, not the workspace's `target/`,
//! because this function is called from tests that run while the outer `cargo test` still
//! holds the workspace target directory's lock; building into the same directory would wait
//! for that lock forever.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{DeployError, Result};

/// Variables of the calling environment that must not reach the nested cargo: a target dir
/// would point it back at the locked workspace `target/`, and host rustflags (say
/// `-C target-cpu=native`) mean nothing for a Cortex-M.
const SCRUBBED_ENV: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
];

/// Builds the firmware in `board` (e.g. `boards/qemu-mps2-an386`) with `cargo build --release`
/// and returns the path of its ELF: the binary named like the package (a board crate may hold
/// other binaries, such as the stream `replay` firmware).
///
/// Uses the cargo that runs the current build when there is one (`$CARGO`), else `cargo` on
/// `PATH`. The ELF path is taken from cargo's own JSON messages, so it is right wherever the
/// board's configuration puts its target directory. Cargo's diagnostics are returned in the
/// error when the build fails.
pub fn build_firmware(board: &Path) -> Result<PathBuf> {
    let build_error = |message: String| DeployError::FirmwareBuild {
        board: board.to_path_buf(),
        message,
    };
    if !board.join("Cargo.toml").is_file() {
        return Err(build_error("no Cargo.toml in that folder".to_string()));
    }
    let package = package_name(&board.join("Cargo.toml")).map_err(build_error)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(board)
        .args([
            "build",
            "--release",
            "--bin",
            &package,
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped());
    for var in SCRUBBED_ENV {
        command.env_remove(var);
    }
    let output = command
        .output()
        .map_err(|e| build_error(format!("cannot run {}: {e}", Path::new(&cargo).display())))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(build_error(format!(
            "cargo build exited with {}:\n{stderr}",
            output.status
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    executable_from_messages(&stdout)
        .ok_or_else(|| build_error(format!("cargo reported no executable; stderr:\n{stderr}")))
}

/// `[package] name` of a manifest.
fn package_name(manifest: &Path) -> std::result::Result<String, String> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let value: toml::Value =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
    value["package"]
        .get("name")
        .and_then(|n| n.as_str())
        .map(String::from)
        .ok_or_else(|| format!("{} has no [package] name", manifest.display()))
}

/// The last `executable` that cargo's `compiler-artifact` messages name.
fn executable_from_messages(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact")
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_comes_from_the_artifact_messages() {
        let messages = r#"{"reason":"compiler-artifact","package_id":"a","executable":null}
{"reason":"build-script-executed","package_id":"b"}
{"reason":"compiler-artifact","package_id":"c","executable":"/t/boards/fw"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_from_messages(messages),
            Some(PathBuf::from("/t/boards/fw"))
        );
        assert_eq!(executable_from_messages("not json"), None);
    }

    #[test]
    fn a_folder_without_a_crate_is_refused() {
        let err = build_firmware(Path::new("/nonexistent-board")).unwrap_err();
        assert!(err.to_string().contains("no Cargo.toml"), "{err}");
    }
}
