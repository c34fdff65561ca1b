//! # tinykd-board-build
//!
//! The build-script half of every tinykd firmware crate (`boards/*`). A firmware's `build.rs`
//! calls [`link_memory_x`] and then [`embed_one`] (a board firmware: one model) or
//! [`embed_builtins`] (the on-device tests: every built-in test model). They:
//!
//! 1. pick the blob: `TINYKD_BLOB` (a `.tkd` file, e.g. a run directory's `student.tkd`) or a
//!    built-in test model of `tinykd-test-models` (`TINYKD_MODEL`, or the caller's default);
//! 2. pick its test subset: `TINYKD_SAMPLES` (a `.tks` file), else the `test.tks` next to the
//!    blob (what `tinykd export` writes), else seeded random inputs; at most
//!    `TINYKD_SAMPLES_LIMIT` samples (default: the caller's);
//! 3. run them on this machine with `tinykd-device`, the oracle the board must match byte for
//!    byte, and count the correct predictions;
//! 4. write the files and `$OUT_DIR/models.rs`, which the firmware `include!`s: `CASES` (one
//!    `tinykd_board::Case` per model, everything in flash) and `ARENA_SIZE`, the largest arena
//!    the blobs' memory plans ask for, so the firmware's static arena is exactly big enough.
//!
//! Relative paths are tried from the board's folder, then from the repository root, so both
//! `TINYKD_BLOB=../../runs/x/student.tkd` and `TINYKD_BLOB=runs/x/student.tkd` work.

use std::{
    env,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use tinykd_format::samples::SampleSet;

/// Seed of the random inputs of the built-in models.
const INPUT_SEED: u64 = 0x0B0A_4D5E;

/// One model to embed: its blob, its samples, and what the host computed for them.
pub struct Embedded {
    /// A name for the logs.
    pub name: String,
    /// The blob.
    pub blob: Vec<u8>,
    /// The inputs, end to end.
    pub inputs: Vec<i8>,
    /// The labels.
    pub labels: Vec<u8>,
    /// The host's outputs, end to end.
    pub expected: Vec<i8>,
    /// The host's correct predictions.
    pub host_correct: u32,
    /// The arena the blob's memory plan asks for.
    pub arena_size: usize,
    /// Multiply-accumulates per inference.
    pub macs: u64,
}

impl Embedded {
    /// Distinct output values and distinct predicted classes over the samples: a comparison
    /// means something only if the outputs are spread out (a model that saturated every logit
    /// would agree trivially).
    pub fn spread(&self) -> (usize, usize) {
        let mut values: Vec<i8> = self.expected.clone();
        values.sort_unstable();
        values.dedup();
        let n = self.labels.len();
        if n == 0 {
            return (0, 0);
        }
        let mut classes: Vec<usize> = self
            .expected
            .chunks_exact(self.expected.len() / n)
            .map(tinykd_device::argmax)
            .collect();
        classes.sort_unstable();
        classes.dedup();
        (values.len(), classes.len())
    }
}

/// Copies the board's `memory.x` into `$OUT_DIR`, where cortex-m-rt's and riscv-rt's `link.x`
/// find it, and passes `-Tlink.x` (plus `extra_scripts`) to the binaries and tests.
pub fn link_memory_x(memory_x: &str, extra_scripts: &[&str]) {
    let out = out_dir();
    fs::copy(memory_x, out.join("memory.x")).expect("copy memory.x into OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={memory_x}");
    for script in std::iter::once(&"link.x").chain(extra_scripts) {
        println!("cargo:rustc-link-arg=-T{script}");
    }
}

/// A board firmware: embeds `TINYKD_BLOB` (or the built-in `TINYKD_MODEL`, default
/// `default_model`) with at most `TINYKD_SAMPLES_LIMIT` (default `default_samples`) samples.
pub fn embed_one(default_model: &str, default_samples: usize) {
    let limit = samples_limit(default_samples);
    let case = match env_path("TINYKD_BLOB") {
        Some(path) => from_file(&path, limit),
        None => {
            println!("cargo:rerun-if-env-changed=TINYKD_MODEL");
            let name = env::var("TINYKD_MODEL").unwrap_or_else(|_| default_model.to_string());
            builtin(&name, limit)
        }
    };
    write(&[case]);
}

/// The on-device tests: every built-in test model with `samples` samples each, in the order
/// of `tinykd_test_models::MODEL_NAMES`, then `TINYKD_BLOB` if it is set.
pub fn embed_builtins(samples: usize) {
    let mut cases: Vec<Embedded> = tinykd_test_models::MODEL_NAMES
        .iter()
        .map(|name| builtin(name, samples))
        .collect();
    if let Some(path) = env_path("TINYKD_BLOB") {
        cases.push(from_file(&path, samples_limit(samples)));
    }
    write(&cases);
}

/// A streaming example (`tinykd_device::Stream` fed by a sensor): embeds `TINYKD_STREAM_BLOB`
/// (a trained time-series student; a path as for `TINYKD_BLOB`), else the seeded conv1d
/// stream test model (`tinykd_test_models::conv1d_stream_model`, HAPT-shaped: 128 samples × 3
/// accelerometer channels in g, with input normalisation), the default of the QEMU replay
/// firmware too. Writes `$OUT_DIR/stream.tkd` and `$OUT_DIR/stream.rs`: `STREAM_ARENA` (the
/// blob's arena) and `STREAM_WINDOW_LEN` (values of one window: the ring buffer), so the
/// firmware's static buffers are exactly big enough. The channel count is not checked here: the
/// firmware checks it against its sensor's and says so.
pub fn embed_stream() {
    let (name, blob) = match env_path("TINYKD_STREAM_BLOB") {
        Some(path) => {
            println!("cargo:rerun-if-changed={}", path.display());
            let blob = fs::read(&path)
                .unwrap_or_else(|e| panic!("TINYKD_STREAM_BLOB={}: {e}", path.display()));
            let name = path
                .file_stem()
                .map_or_else(|| "blob".to_string(), |s| s.to_string_lossy().into_owned());
            (name, blob)
        }
        None => (
            "conv1d-stream".to_string(),
            tinykd_test_models::conv1d_stream_model().blob,
        ),
    };
    write_stream(&out_dir(), &name, &blob);
}

/// The files of [`embed_stream`], in `out`.
fn write_stream(out: &Path, name: &str, blob: &[u8]) {
    let desc = tinykd_format::validate(blob)
        .unwrap_or_else(|e| panic!("TINYKD_STREAM_BLOB ({name}): not a valid blob: {e}"));
    let input = desc.input();
    fs::write(out.join("stream.tkd"), blob).expect("write stream.tkd");
    let code = format!(
        "// Written by tinykd-board-build (build.rs): the streaming model's sizes.\n\
         /// Arena bytes of the embedded streaming model.\n\
         pub const STREAM_ARENA: usize = {};\n\
         /// Values of one window (window × channels): the ring buffer.\n\
         pub const STREAM_WINDOW_LEN: usize = {};\n",
        desc.arena_size(),
        input.len,
    );
    fs::write(out.join("stream.rs"), code).expect("write stream.rs");
    println!(
        "cargo:warning=embedded stream model {name}: blob {} B, arena {} B, window {} × {} channels",
        blob.len(),
        desc.arena_size(),
        input.len / u32::from(input.shape.c).max(1),
        input.shape.c,
    );
}

/// A built-in test model over seeded random inputs.
pub fn builtin(name: &str, samples: usize) -> Embedded {
    let model = tinykd_test_models::by_name(name).unwrap_or_else(|| {
        panic!(
            "TINYKD_MODEL={name:?} is not a built-in model; choose one of {:?} or set TINYKD_BLOB",
            tinykd_test_models::MODEL_NAMES
        )
    });
    let desc = tinykd_format::validate(&model.blob).expect("a built-in blob validates");
    let shape = desc.input().shape;
    let (inputs, labels) =
        tinykd_test_models::random_images(shape, tinykd_test_models::CLASSES, samples, INPUT_SEED);
    let embedded = host_run(name.to_string(), model.blob, inputs, labels);
    // A comparison means something only if the outputs are spread out.
    let (values, classes) = embedded.spread();
    assert!(
        samples < 8 || values >= 32,
        "{name}: degenerate host outputs: {values} distinct values, {classes} distinct classes"
    );
    embedded
}

/// A blob from a file, over `TINYKD_SAMPLES`, the `test.tks` next to it, or random inputs.
pub fn from_file(path: &Path, limit: usize) -> Embedded {
    println!("cargo:rerun-if-changed={}", path.display());
    let blob = fs::read(path).unwrap_or_else(|e| panic!("TINYKD_BLOB={}: {e}", path.display()));
    let desc = tinykd_format::validate(&blob)
        .unwrap_or_else(|e| panic!("TINYKD_BLOB={}: not a valid blob: {e}", path.display()));
    let input_len = desc.input().shape.elements() as usize;
    let shape = desc.input().shape;
    let tks = env_path("TINYKD_SAMPLES")
        .or_else(|| Some(path.with_file_name("test.tks")).filter(|p| p.is_file()));
    let (inputs, labels) = match tks {
        Some(tks) => {
            println!("cargo:rerun-if-changed={}", tks.display());
            let bytes = fs::read(&tks).unwrap_or_else(|e| panic!("{}: {e}", tks.display()));
            let set = SampleSet::from_bytes(&bytes)
                .unwrap_or_else(|e| panic!("{}: not a .tks sample set: {e}", tks.display()));
            let sample_len = set.header().sample_len as usize;
            assert_eq!(
                sample_len,
                input_len,
                "{}: samples of {sample_len} values, but the blob's input takes {input_len}",
                tks.display()
            );
            let mut inputs = Vec::new();
            let mut labels = Vec::new();
            for (input, label) in set.iter().take(limit) {
                inputs.extend_from_slice(input);
                labels.push(label);
            }
            (inputs, labels)
        }
        None => {
            tinykd_test_models::random_images(shape, tinykd_test_models::CLASSES, limit, INPUT_SEED)
        }
    };
    let name = path
        .file_stem()
        .map_or_else(|| "blob".to_string(), |s| s.to_string_lossy().into_owned());
    host_run(name, blob, inputs, labels)
}

/// Runs every input on this machine with `tinykd-device`: the outputs the board must match.
fn host_run(name: String, blob: Vec<u8>, inputs: Vec<i8>, labels: Vec<u8>) -> Embedded {
    let macs = tinykd_test_models::count_macs(&blob);
    // The device runtime borrows the blob for 'static on a board; here a leaked copy is fine.
    let leaked: &'static [u8] = Box::leak(blob.clone().into_boxed_slice());
    let model = tinykd_device::Model::from_bytes(leaked)
        .unwrap_or_else(|e| panic!("{name}: tinykd-device rejects the blob: {e}"));
    let mut arena = vec![0u8; model.arena_size()];
    let mut expected = Vec::with_capacity(labels.len() * model.output_len());
    let mut host_correct = 0;
    for (input, &label) in inputs.chunks_exact(model.input_len()).zip(&labels) {
        let output = model
            .run(input, &mut arena)
            .unwrap_or_else(|e| panic!("{name}: the host run failed: {e}"));
        if tinykd_device::argmax(output) == usize::from(label) {
            host_correct += 1;
        }
        expected.extend_from_slice(output);
    }
    Embedded {
        name,
        arena_size: model.arena_size(),
        blob,
        inputs,
        labels,
        expected,
        host_correct,
        macs,
    }
}

/// Writes the case files and `$OUT_DIR/models.rs`.
pub fn write(cases: &[Embedded]) {
    let out = out_dir();
    let as_bytes = |v: &[i8]| v.iter().map(|&x| x as u8).collect::<Vec<u8>>();
    let include = |file: &str| format!("include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{file}\"))");
    let mut code =
        String::from("// Written by tinykd-board-build (build.rs): the embedded models.\n");
    let arena = cases.iter().map(|c| c.arena_size).max().unwrap_or(0);
    writeln!(
        code,
        "/// Bytes of the largest arena the embedded blobs ask for.\npub const ARENA_SIZE: usize = {arena};"
    )
    .unwrap();
    for (i, case) in cases.iter().enumerate() {
        let files = [
            (format!("case{i}.tkd"), case.blob.clone()),
            (format!("case{i}.x"), as_bytes(&case.inputs)),
            (format!("case{i}.y"), as_bytes(&case.expected)),
            (format!("case{i}.labels"), case.labels.clone()),
        ];
        for (file, bytes) in &files {
            fs::write(out.join(file), bytes).expect("write into OUT_DIR");
        }
        writeln!(
            code,
            "static BLOB{i}: &tinykd_board::Aligned<[u8]> = &tinykd_board::Aligned(*{});",
            include(&files[0].0)
        )
        .unwrap();
    }
    writeln!(
        code,
        "/// The embedded cases.\npub static CASES: [tinykd_board::Case; {}] = [",
        cases.len()
    )
    .unwrap();
    for (i, case) in cases.iter().enumerate() {
        writeln!(
            code,
            "    tinykd_board::Case {{ name: {:?}, blob: &BLOB{i}.0, inputs: {}, labels: {}, expected: {}, host_correct: {}, macs: {} }},",
            case.name,
            include(&format!("case{i}.x")),
            include(&format!("case{i}.labels")),
            include(&format!("case{i}.y")),
            case.host_correct,
            case.macs,
        )
        .unwrap();
    }
    code.push_str("];\n");
    fs::write(out.join("models.rs"), code).expect("write models.rs");
    for case in cases {
        println!(
            "cargo:warning=embedded {}: blob {} B, arena {} B, {} samples ({} B of inputs), host {} correct, outputs: {} distinct values, {} distinct classes",
            case.name,
            case.blob.len(),
            case.arena_size,
            case.labels.len(),
            case.inputs.len(),
            case.host_correct,
            case.spread().0,
            case.spread().1,
        );
    }
}

fn out_dir() -> PathBuf {
    PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
}

fn samples_limit(default: usize) -> usize {
    println!("cargo:rerun-if-env-changed=TINYKD_SAMPLES_LIMIT");
    match env::var("TINYKD_SAMPLES_LIMIT") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("TINYKD_SAMPLES_LIMIT={text:?} is not a count")),
        Err(_) => default,
    }
}

/// A path from the environment: absolute, or relative to the board's folder or to the
/// repository root (two folders up).
fn env_path(var: &str) -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed={var}");
    let value = PathBuf::from(env::var_os(var).filter(|v| !v.is_empty())?);
    if value.is_absolute() {
        return Some(value);
    }
    let board = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let candidates = [board.join(&value), board.join("../..").join(&value)];
    let found = candidates.iter().find(|p| p.exists()).cloned();
    Some(found.unwrap_or_else(|| {
        panic!(
            "{var}={}: no such file in {} or in the repository root",
            value.display(),
            board.display()
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch folder under the system's temporary directory, removed at the end.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                env::temp_dir().join(format!("tinykd-board-build-{name}-{}", std::process::id()));
            fs::create_dir_all(&dir).expect("scratch folder");
            Self(dir)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_blob_takes_the_test_set_next_to_it_up_to_the_limit() {
        let scratch = Scratch::new("tks");
        let model = tinykd_test_models::int8_student();
        let (inputs, labels) =
            tinykd_test_models::random_images(tinykd_test_models::STUDENT_INPUT, 10, 5, 1);
        let blob = scratch.0.join("student.tkd");
        fs::write(&blob, &model.blob).unwrap();
        let tks = tinykd_format::samples::to_vec(784, &inputs, &labels).unwrap();
        fs::write(scratch.0.join("test.tks"), tks).unwrap();

        let case = from_file(&blob, 3);
        assert_eq!(case.name, "student");
        assert_eq!(case.labels, labels[..3]);
        assert_eq!(case.inputs, inputs[..3 * 784]);
        assert_eq!(case.expected.len(), 3 * 10);
        assert_eq!(case.arena_size, 15_680);
        // The expected outputs are the host run's, sample by sample.
        let again = host_run("x".into(), model.blob, inputs[784..1568].to_vec(), vec![0]);
        assert_eq!(again.expected, case.expected[10..20]);
    }

    #[test]
    #[should_panic(expected = "samples of 3 values")]
    fn a_test_set_of_the_wrong_shape_is_refused() {
        let scratch = Scratch::new("shape");
        let blob = scratch.0.join("student.tkd");
        fs::write(&blob, tinykd_test_models::int8_student().blob).unwrap();
        let tks = tinykd_format::samples::to_vec(3, &[1, 2, 3], &[0]).unwrap();
        fs::write(scratch.0.join("test.tks"), tks).unwrap();
        from_file(&blob, 10);
    }

    #[test]
    fn the_stream_files_size_ring_and_arena_from_the_blob() {
        let scratch = Scratch::new("stream");
        let blob = tinykd_test_models::conv1d_stream_model().blob;
        write_stream(&scratch.0, "conv1d-stream", &blob);
        assert_eq!(fs::read(scratch.0.join("stream.tkd")).unwrap(), blob);
        let code = fs::read_to_string(scratch.0.join("stream.rs")).unwrap();
        assert!(
            code.contains("pub const STREAM_ARENA: usize = 3712;"),
            "{code}"
        );
        // 128 samples × 3 channels.
        assert!(
            code.contains("pub const STREAM_WINDOW_LEN: usize = 384;"),
            "{code}"
        );
    }

    #[test]
    #[should_panic(expected = "not a valid blob")]
    fn a_broken_stream_blob_is_refused() {
        let scratch = Scratch::new("stream-broken");
        write_stream(&scratch.0, "broken", b"not a blob");
    }

    #[test]
    fn the_generated_code_embeds_every_case_and_the_largest_arena() {
        let scratch = Scratch::new("write");
        env::set_var("OUT_DIR", &scratch.0);
        write(&[builtin("e2e-cnn", 2), builtin("binary-student", 2)]);
        let code = fs::read_to_string(scratch.0.join("models.rs")).unwrap();
        assert!(
            code.contains("pub const ARENA_SIZE: usize = 15680;"),
            "{code}"
        );
        assert!(
            code.contains("pub static CASES: [tinykd_board::Case; 2]"),
            "{code}"
        );
        assert!(code.contains("name: \"binary-student\""), "{code}");
        assert_eq!(fs::read(scratch.0.join("case1.labels")).unwrap().len(), 2);
    }
}
