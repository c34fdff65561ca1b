//! QEMU firmware for tinykd-device's fast kernels (issue 10). Semihosting argv selects the mode:
//!
//! - `check`: runs every embedded random model (see `build.rs`) on random inputs with the
//!   portable reference kernels and with this target's fast kernels, compares every output byte,
//!   prints `kernel-check: ... identical` and exits 0 (1 on the first difference).
//! - `bench <layer> <load|fast|port>`: loads benchmark model `<layer>` and runs it once with the
//!   fast kernels (`fast`) or the reference (`port`), or not at all (`load`): the difference of
//!   two runs' instruction counts (QEMU insn-count plugin) is the cost of one inference.
//!   The mode words have the same length so that argv parsing costs the same in every run.
#![no_std]
#![no_main]

use cortex_m_rt::{entry, exception, ExceptionFrame};
use semihosting::{eprintln, println, process};
use tinykd_device::{bench, Model};

mod models {
    include!(concat!(env!("OUT_DIR"), "/models.rs"));
}

/// 4-aligned arena (the fast kernels' scratch needs word alignment).
#[repr(C, align(8))]
struct Aligned<const N: usize>([u8; N]);

/// splitmix64, for the inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

const IO_CAP: usize = 4096;

#[entry]
fn main() -> ! {
    static mut ARENA: Aligned<{ models::ARENA_CAP }> = Aligned([0; models::ARENA_CAP]);
    static mut INPUT: [i8; 8192] = [0; 8192];
    let arena: &mut [u8] = &mut ARENA.0;
    let input: &mut [i8] = INPUT;
    let Ok(args) = semihosting::experimental::env::args::<256>() else {
        fail("cannot read argv")
    };
    let mut argv = args.into_iter().map(|a| a.unwrap_or(""));
    match argv.next() {
        Some("check") => check(arena, input),
        Some("bench") => {
            let (Some(layer), Some(mode)) = (argv.next(), argv.next()) else {
                fail("usage: bench <layer> <load|fast|port>")
            };
            bench_one(layer, mode, arena, input)
        }
        _ => fail("usage: check | bench <layer> <load|fast|port>"),
    }
}

fn fail(what: &str) -> ! {
    eprintln!("error: {}", what);
    process::exit(2)
}

fn check(arena: &mut [u8], input: &mut [i8]) -> ! {
    let mut rng = Rng(0x1234_5678);
    let mut expected = [0i8; IO_CAP];
    let (mut runs, mut outputs) = (0usize, 0usize);
    for (i, blob) in models::CHECK.iter().enumerate() {
        let model = match Model::from_bytes(blob) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("check {}: blob rejected: {}", i, e);
                process::exit(1)
            }
        };
        let n = model.input_len();
        if n > input.len() || model.arena_size() > arena.len() || model.output_len() > IO_CAP {
            eprintln!("check {}: does not fit the firmware's buffers", i);
            process::exit(1)
        }
        for _ in 0..4 {
            for v in input.iter_mut().take(n) {
                *v = rng.next() as i8;
            }
            // Garbage in the arena must not matter either.
            for b in arena.iter_mut().take(model.arena_size()) {
                *b = rng.next() as u8;
            }
            bench::use_portable(true);
            let want = match model.run(&input[..n], arena) {
                Ok(out) => out,
                Err(e) => {
                    eprintln!("check {}: reference run failed: {}", i, e);
                    process::exit(1)
                }
            };
            let len = want.len();
            expected[..len].copy_from_slice(want);
            bench::use_portable(false);
            match model.run(&input[..n], arena) {
                Ok(got) if got == &expected[..len] => {}
                Ok(got) => {
                    eprintln!(
                        "check {}: fast kernels differ: got {:?} want {:?}",
                        i,
                        &got[..len.min(16)],
                        &expected[..len.min(16)]
                    );
                    process::exit(1)
                }
                Err(e) => {
                    eprintln!("check {}: fast run failed: {}", i, e);
                    process::exit(1)
                }
            }
            runs += 1;
            outputs += len;
        }
    }
    // The benchmark layers and the student too (their outputs are too large for `expected`,
    // so they are compared by length and FNV-1a hash).
    for &(name, _, blob, _, _) in models::BENCH {
        let Ok(model) = Model::from_bytes(blob) else {
            eprintln!("check {}: blob rejected", name);
            process::exit(1)
        };
        let n = model.input_len();
        if n > input.len() || model.arena_size() > arena.len() {
            continue; // does not fit this machine's RAM (see bench_one)
        }
        for v in input.iter_mut().take(n) {
            *v = rng.next() as i8;
        }
        let mut sums = [(0usize, 0u64); 2];
        for (portable, sum) in [(true, 0usize), (false, 1)] {
            bench::use_portable(portable);
            match model.run(&input[..n], arena) {
                Ok(out) => {
                    sums[sum] = (out.len(), fnv(out));
                    outputs += out.len();
                }
                Err(e) => {
                    eprintln!("check {}: run failed: {}", name, e);
                    process::exit(1)
                }
            }
        }
        if sums[0] != sums[1] {
            eprintln!("check {}: fast kernels differ from the reference", name);
            process::exit(1)
        }
        runs += 1;
    }
    println!(
        "kernel-check: {} random models and {} benchmark models, {} runs, {} output bytes: {} kernels identical to the reference",
        models::CHECK.len(),
        models::BENCH.len(),
        runs,
        outputs,
        bench::native_kernels()
    );
    host_check(arena);
    process::exit(0)
}

/// FNV-1a over the output bytes.
fn fnv(x: &[i8]) -> u64 {
    x.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b as u8)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The binary models on the inputs the host ran them on (build.rs): every output byte must equal
/// the host's, with the fast kernels and with the reference.
fn host_check(arena: &mut [u8]) {
    let (mut runs, mut bytes) = (0usize, 0usize);
    for (i, &(blob, inputs, outputs, n)) in models::HOST.iter().enumerate() {
        let Ok(model) = Model::from_bytes(blob) else {
            eprintln!("host {}: blob rejected", i);
            process::exit(1)
        };
        let (xl, yl) = (model.input_len(), model.output_len());
        if model.arena_size() > arena.len() {
            eprintln!("host {}: does not fit the firmware's arena", i);
            process::exit(1)
        }
        for r in 0..n {
            let x = tinykd_format_bytes_as_i8(&inputs[r * xl..(r + 1) * xl]);
            let want = tinykd_format_bytes_as_i8(&outputs[r * yl..(r + 1) * yl]);
            for portable in [false, true] {
                bench::use_portable(portable);
                match model.run(x, arena) {
                    Ok(got) if got == want => {}
                    _ => {
                        eprintln!(
                            "host {} run {}: differs from the host (portable {})",
                            i, r, portable
                        );
                        process::exit(1)
                    }
                }
            }
            runs += 1;
            bytes += yl;
        }
    }
    bench::use_portable(false);
    println!(
        "host-check: {} binary models, {} inputs, {} output bytes: identical to the host run (fast and reference kernels)",
        models::HOST.len(),
        runs,
        bytes
    );
}

fn bench_one(layer: &str, mode: &str, arena: &mut [u8], input: &mut [i8]) -> ! {
    let Some(&(name, what, blob, macs, arena_without)) =
        models::BENCH.iter().find(|b| b.0 == layer)
    else {
        fail("unknown layer")
    };
    let Ok(model) = Model::from_bytes(blob) else {
        fail("blob rejected")
    };
    let n = model.input_len();
    if n > input.len() || model.arena_size() > arena.len() {
        eprintln!(
            "bench {}: arena {} B does not fit",
            name,
            model.arena_size()
        );
        process::exit(3)
    }
    let mut rng = Rng(0xBE4C);
    for v in input.iter_mut().take(n) {
        *v = rng.next() as i8;
    }
    let code = match mode {
        "load" => 0,
        "fast" | "port" => {
            bench::use_portable(mode == "port");
            match model.run(&input[..n], arena) {
                Ok(out) => {
                    core::hint::black_box(out);
                    0
                }
                Err(_) => 4,
            }
        }
        _ => fail("mode must be load, fast or port"),
    };
    println!(
        "bench {} ({}): macs {} arena {} arena_without_scratch {} kernels {} mode {}",
        name,
        what,
        macs,
        model.arena_size(),
        arena_without,
        bench::native_kernels(),
        mode
    );
    process::exit(code)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    eprintln!(
        "HardFault at pc={:#010x} lr={:#010x}",
        frame.pc(),
        frame.lr()
    );
    process::exit(7)
}

/// Bytes viewed as int8 values.
fn tinykd_format_bytes_as_i8(b: &[u8]) -> &[i8] {
    // SAFETY: `u8` and `i8` have the same size and alignment, and every bit pattern is valid.
    unsafe { core::slice::from_raw_parts(b.as_ptr().cast::<i8>(), b.len()) }
}
