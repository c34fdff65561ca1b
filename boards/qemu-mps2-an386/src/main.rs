//! tinykd test firmware for QEMU's `mps2-an386` board (Cortex-M4F, `thumbv7em-none-eabihf`).
//!
//! It runs one blob over a whole sample set and writes every output back, so the host can check
//! that the board computes exactly what `tinykd-device` computes on x86:
//!
//! ```text
//! qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none -serial none \
//!   -semihosting-config enable=on,target=native,arg=model.tkd,arg=samples.tks,arg=out.tko \
//!   -kernel qemu-mps2-an386
//! ```
//!
//! 1. reads the blob (`.tkd`) through semihosting into a static, aligned buffer and loads it
//!    with `tinykd_device::Model::from_bytes` (which validates it before anything runs);
//! 2. streams the sample set (`.tks`, SPEC §7) one sample at a time, so RAM does not grow with
//!    the number of samples: one file handle walks the inputs, a second one the labels;
//! 3. runs every sample and appends its output bytes and predicted class to the output file;
//! 4. prints `samples: N correct: K` and exits through semihosting with a status from
//!    [`Status`].
//!
//! The output file (`.tko`), read back by `tinykd::deploy`:
//!
//! ```text
//! b"TKO1" | n: u32 LE | output_len: u32 LE | n × ( class: u32 LE | output_len int8 outputs )
//! ```
//!
//! The paths come from semihosting argv, which QEMU fills from `arg=` items and the
//! firmware splits on blanks, so paths must not contain spaces.
#![no_std]
#![no_main]

use core::ffi::CStr;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use semihosting::{
    eprintln,
    fs::File,
    io::{self, Read, Write},
    println, process,
};
use tinykd_device::Model;
use tinykd_format::samples::{SampleSetHeader, SAMPLES_HEADER_LEN};

/// Static buffer sizes, from `build.rs` (overridable with `TINYKD_*_CAP` at build time).
mod capacity {
    include!(concat!(env!("OUT_DIR"), "/capacity.rs"));
}
use capacity::{ARENA_CAP, BLOB_CAP, IO_CAP};

/// Magic of the output file this firmware writes.
const OUT_MAGIC: &[u8; 4] = b"TKO1";
/// Longest path accepted from argv, including its terminating NUL.
const PATH_CAP: usize = 512;
/// Size of the buffer that receives the whole semihosting command line.
const ARGS_CAP: usize = 3 * PATH_CAP;

/// The exit status of a run. Every value is distinct so that the host can tell a broken set-up
/// from a broken model without parsing text; the host maps each one to an error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
enum Status {
    /// Every sample ran and its output was written (whatever the accuracy).
    Ok = 0,
    /// argv is not `<blob.tkd> <samples.tks> <out.tko>`, or a path is too long.
    Usage = 2,
    /// A file could not be opened, read or written through semihosting.
    Io = 3,
    /// The blob is larger than the firmware's buffer, or `tinykd-device` rejected it.
    BadBlob = 4,
    /// The sample set is malformed, truncated, or its samples do not fit the model's input.
    BadSamples = 5,
    /// The model's arena or output does not fit, or running a sample failed.
    RunFailed = 6,
    /// The core took a HardFault (see [`HardFault`]).
    HardFault = 7,
}

/// A failure: the status to exit with, plus what to tell the user on stderr.
struct Failure {
    status: Status,
    what: &'static str,
    /// The runtime's own error, when `tinykd-device` is the one that refused.
    cause: Option<tinykd_device::Error>,
}

impl Failure {
    const fn new(status: Status, what: &'static str) -> Self {
        Self {
            status,
            what,
            cause: None,
        }
    }

    const fn device(status: Status, what: &'static str, cause: tinykd_device::Error) -> Self {
        Self {
            status,
            what,
            cause: Some(cause),
        }
    }
}

/// Buffer aligned to 8 bytes: blob weights and the arena are borrowed in place, and an aligned
/// base keeps every offset the exporter aligned also aligned in memory.
#[repr(C, align(8))]
struct Aligned<const N: usize>([u8; N]);

#[entry]
fn main() -> ! {
    // cortex-m-rt turns `static mut` items of the entry function into `&'static mut`
    // references, which is sound because `main` runs exactly once. They live in .bss.
    static mut BLOB: Aligned<BLOB_CAP> = Aligned([0; BLOB_CAP]);
    static mut ARENA: Aligned<ARENA_CAP> = Aligned([0; ARENA_CAP]);
    static mut INPUT: [u8; IO_CAP] = [0; IO_CAP];

    match run(&mut BLOB.0, &mut ARENA.0, INPUT) {
        Ok(()) => process::exit(Status::Ok as i32),
        Err(failure) => {
            match failure.cause {
                Some(cause) => {
                    eprintln!("error: {}: {} (code {})", failure.what, cause, cause.code())
                }
                None => eprintln!("error: {}", failure.what),
            }
            process::exit(failure.status as i32)
        }
    }
}

/// The whole run; the buffers are passed in so that the blob can be borrowed for `'static`.
fn run(blob_buf: &'static mut [u8], arena: &mut [u8], input_buf: &mut [u8]) -> Result<(), Failure> {
    let args = semihosting::experimental::env::args::<ARGS_CAP>()
        .map_err(|_| Failure::new(Status::Usage, "cannot read the semihosting command line"))?;
    let mut argv = &args;
    let mut blob_path = [0u8; PATH_CAP];
    let mut samples_path = [0u8; PATH_CAP];
    let mut out_path = [0u8; PATH_CAP];
    let blob_path = next_path(&mut argv, &mut blob_path)?;
    let samples_path = next_path(&mut argv, &mut samples_path)?;
    let out_path = next_path(&mut argv, &mut out_path)?;
    if argv.next().is_some() {
        return Err(usage());
    }

    // 1. The blob, read whole into its static buffer, then loaded in place.
    let blob_len = read_whole(blob_path, blob_buf)?;
    let blob: &'static [u8] = &blob_buf[..blob_len];
    let model = Model::from_bytes(blob)
        .map_err(|e| Failure::device(Status::BadBlob, "tinykd-device rejected the blob", e))?;
    let input_len = model.input_len();
    let output_len = model.output_len();
    if model.arena_size() > arena.len() {
        return Err(Failure::new(
            Status::RunFailed,
            "the model's arena is larger than the firmware's (rebuild with TINYKD_ARENA_CAP)",
        ));
    }
    let output_len_u32 = u32::try_from(output_len)
        .map_err(|_| Failure::new(Status::RunFailed, "the model's output is too long"))?;

    // 2. The sample set: header, then one handle on the inputs and one on the labels.
    let mut inputs = File::open(samples_path)
        .map_err(|_| Failure::new(Status::Io, "cannot open the sample set"))?;
    let mut header = [0u8; SAMPLES_HEADER_LEN];
    inputs
        .read_exact(&mut header)
        .map_err(|_| Failure::new(Status::BadSamples, "the sample set has no complete header"))?;
    let header = SampleSetHeader::parse(&header).map_err(|_| {
        Failure::new(
            Status::BadSamples,
            "the sample set does not start with TKS1",
        )
    })?;
    let n = header.count;
    let sample_len = usize::try_from(header.sample_len)
        .map_err(|_| Failure::new(Status::BadSamples, "the sample length is too large"))?;
    if sample_len != input_len {
        return Err(Failure::new(
            Status::BadSamples,
            "the sample length differs from the model's input length",
        ));
    }
    let input_buf = input_buf.get_mut(..sample_len).ok_or(Failure::new(
        Status::BadSamples,
        "a sample is larger than the firmware's input buffer (rebuild with TINYKD_IO_CAP)",
    ))?;
    // Where the first label sits; an empty set has no labels to seek to.
    let labels_at = match n {
        0 => header.total_len(),
        _ => header.label_offset(0),
    }
    .ok_or(Failure::new(
        Status::BadSamples,
        "the sample set is too large",
    ))?;
    let mut labels = File::open(samples_path)
        .map_err(|_| Failure::new(Status::Io, "cannot open the sample set"))?;
    io::Seek::seek(&mut labels, io::SeekFrom::Start(labels_at as u64))
        .map_err(|_| Failure::new(Status::BadSamples, "the sample set has no labels"))?;

    // 3. Stream: read one sample, run it, append its result.
    let mut out = File::create(out_path)
        .map_err(|_| Failure::new(Status::Io, "cannot create the output file"))?;
    let mut out_header = [0u8; 12];
    out_header[..4].copy_from_slice(OUT_MAGIC);
    out_header[4..8].copy_from_slice(&n.to_le_bytes());
    out_header[8..].copy_from_slice(&output_len_u32.to_le_bytes());
    write_out(&mut out, &out_header)?;

    let mut correct: u32 = 0;
    for _ in 0..n {
        inputs.read_exact(input_buf).map_err(|_| {
            Failure::new(Status::BadSamples, "the sample set is truncated (inputs)")
        })?;
        let mut label = [0u8; 1];
        labels.read_exact(&mut label).map_err(|_| {
            Failure::new(Status::BadSamples, "the sample set is truncated (labels)")
        })?;
        let input = tinykd_format::bytes_as_i8(input_buf);
        let output = model
            .run(input, arena)
            .map_err(|e| Failure::device(Status::RunFailed, "running a sample failed", e))?;
        let class = tinykd_device::argmax(output);
        if class == usize::from(label[0]) {
            correct += 1;
        }
        let class = u32::try_from(class)
            .map_err(|_| Failure::new(Status::RunFailed, "class index out of range"))?;
        write_out(&mut out, &class.to_le_bytes())?;
        write_out(&mut out, as_u8(output))?;
    }
    // Anything after the labels means the header lied about `n`.
    let mut extra = [0u8; 1];
    if labels
        .read(&mut extra)
        .map_err(|_| Failure::new(Status::Io, "cannot read the sample set"))?
        != 0
    {
        return Err(Failure::new(
            Status::BadSamples,
            "the sample set has trailing bytes",
        ));
    }

    println!("samples: {} correct: {}", n, correct);
    Ok(())
}

fn usage() -> Failure {
    Failure::new(
        Status::Usage,
        "usage: semihosting argv <blob.tkd> <samples.tks> <out.tko>",
    )
}

/// Takes the next argv item and copies it, NUL-terminated, into `buf`.
fn next_path<'a, 'b, I>(argv: &mut I, buf: &'b mut [u8]) -> Result<&'b CStr, Failure>
where
    I: Iterator<Item = Result<&'a str, core::str::Utf8Error>>,
{
    let arg = match argv.next() {
        Some(Ok(arg)) if !arg.is_empty() => arg,
        _ => return Err(usage()),
    };
    let bytes = arg.as_bytes();
    let dst = buf
        .get_mut(..bytes.len() + 1)
        .ok_or(Failure::new(Status::Usage, "a path is too long"))?;
    let (text, nul) = dst.split_at_mut(bytes.len());
    text.copy_from_slice(bytes);
    nul.fill(0);
    CStr::from_bytes_with_nul(dst).map_err(|_| Failure::new(Status::Usage, "a path contains NUL"))
}

/// Reads a whole file into `buf`, failing if it does not fit.
fn read_whole(path: &CStr, buf: &mut [u8]) -> Result<usize, Failure> {
    let read_error = |_| Failure::new(Status::Io, "cannot read the blob");
    let mut file =
        File::open(path).map_err(|_| Failure::new(Status::Io, "cannot open the blob"))?;
    let mut len = 0;
    while let Some(rest) = buf.get_mut(len..).filter(|rest| !rest.is_empty()) {
        let got = file.read(rest).map_err(read_error)?;
        if got == 0 {
            return Ok(len);
        }
        len += got;
    }
    // The buffer is full: the file fits only if nothing is left to read.
    let mut probe = [0u8; 1];
    if file.read(&mut probe).map_err(read_error)? != 0 {
        return Err(Failure::new(
            Status::BadBlob,
            "the blob is larger than the firmware's buffer (rebuild with TINYKD_BLOB_CAP)",
        ));
    }
    Ok(len)
}

fn write_out(out: &mut File, bytes: &[u8]) -> Result<(), Failure> {
    out.write_all(bytes)
        .map_err(|_| Failure::new(Status::Io, "cannot write the output file"))
}

/// Views int8 values as bytes, for writing them out unchanged.
fn as_u8(values: &[i8]) -> &[u8] {
    // SAFETY: u8 and i8 have the same size and alignment and every bit pattern is valid for
    // both; the returned slice borrows `values`, so it cannot outlive it.
    unsafe { core::slice::from_raw_parts(values.as_ptr().cast::<u8>(), values.len()) }
}

/// A fault would otherwise spin forever in cortex-m-rt's default handler and QEMU would never
/// exit; report where it happened and exit with [`Status::HardFault`].
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    eprintln!(
        "HardFault at pc={:#010x} lr={:#010x}",
        frame.pc(),
        frame.lr()
    );
    process::exit(Status::HardFault as i32)
}
