//! Replays a recorded sensor stream through `tinykd_device::Stream` on QEMU's mps2-an386
//! (Cortex-M4F), as a sensor node would see it: one raw 3-axis sample at a time (f32, in g),
//! normalised with the blob's input normalisation, quantized, pushed into the ring buffer; the
//! model runs every hop (half a window) once the window is full.
//!
//! The blob and the recording (`.tkr`, SPEC §8) are embedded in flash at build time (see
//! `build.rs`: `TINYKD_STREAM_BLOB`, `TINYKD_STREAM`; by default the seeded conv1d test model
//! and a synthetic stream). Semihosting argv picks the mode:
//!
//! - `replay`: prints one line per window,
//!   `window <i> sample <s> class <c> label <l|-> out <hex bytes>`, then
//!   `replay: steps <n> windows <w> labelled <k> correct <m>` and the RAM figures
//!   (`ram: ring <b> arena <b> stack <b>`: the ring buffer, the arena and the painted stack's
//!   high-water mark); `tests/tests/stream_replay.rs` compares every line with the host;
//! - `bench`: the same replay without printing (one summary line): with the QEMU insn-count
//!   plugin, `insns(bench) − insns(load)` is the cost of the whole stream;
//! - `load`: validates the model and sets up the stream only.
//!
//! Exit status: 0 success, 2 bad argv, 4 blob rejected, 5 recording rejected, 6 run failed,
//! 7 HardFault.
#![no_std]
#![no_main]

use cortex_m_rt::{entry, exception, ExceptionFrame};
use semihosting::{eprintln, print, println, process};
use tinykd_board::Stack;
use tinykd_device::{Model, Stream};
use tinykd_format::recording::Recording;

mod replay {
    include!(concat!(env!("OUT_DIR"), "/replay.rs"));
}

static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/stream.tkd"));
static STREAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/stream.tkr"));

/// 4-aligned arena (the fast kernels' scratch needs word alignment).
#[repr(C, align(8))]
struct Aligned<const N: usize>([u8; N]);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Replay,
    Bench,
    Load,
}

#[entry]
fn main() -> ! {
    static mut ARENA: Aligned<{ replay::ARENA }> = Aligned([0; replay::ARENA]);
    static mut RING: [i8; replay::WINDOW_LEN] = [0; replay::WINDOW_LEN];
    let stack = Stack::from_linker();
    stack.paint();
    let Ok(args) = semihosting::experimental::env::args::<64>() else {
        fail(2, "cannot read argv")
    };
    // Every mode word has the same length, so parsing costs the same in each.
    let mode = match args.into_iter().next().and_then(Result::ok) {
        Some("replay") => Mode::Replay,
        Some("bench_") => Mode::Bench,
        Some("load__") => Mode::Load,
        _ => fail(2, "usage: replay | bench_ | load__"),
    };
    let Ok(model) = Model::from_bytes(BLOB) else {
        fail(4, "blob rejected")
    };
    let Ok(rec) = Recording::from_bytes(STREAM) else {
        fail(5, "recording rejected")
    };
    let Ok(mut stream) = Stream::new(model, RING, &mut ARENA.0) else {
        fail(6, "stream set-up failed (ring or arena size)")
    };
    if mode == Mode::Load {
        // The same closing work as the other modes (the stack scan), so that it cancels.
        println!(
            "load: window {} channels {} stack {}",
            stream.window(),
            stream.channels(),
            stack.high_water()
        );
        process::exit(0)
    }
    let mut sample = [0f32; replay::CHANNELS];
    let (mut windows, mut labelled, mut correct) = (0u32, 0u32, 0u32);
    for i in 0..rec.steps() {
        let Some(label) = rec.step(i, &mut sample) else {
            fail(5, "recording step out of range")
        };
        match stream.push(&sample) {
            Ok(Some(p)) => {
                windows += 1;
                if let Some(l) = label {
                    labelled += 1;
                    correct += u32::from(usize::from(l) == p.class);
                }
                if mode == Mode::Replay {
                    print!(
                        "window {} sample {} class {} label ",
                        p.window, p.sample, p.class
                    );
                    match label {
                        Some(l) => print!("{}", l),
                        None => print!("-"),
                    }
                    print!(" out ");
                    for b in p.output {
                        print!("{:02x}", *b as u8);
                    }
                    println!();
                }
            }
            Ok(None) => {}
            Err(_) => fail(6, "run failed"),
        }
    }
    println!(
        "replay: steps {} windows {} labelled {} correct {}",
        rec.steps(),
        windows,
        labelled,
        correct
    );
    println!(
        "ram: ring {} arena {} stack {}",
        replay::WINDOW_LEN,
        replay::ARENA,
        stack.high_water()
    );
    process::exit(0)
}

fn fail(status: i32, what: &str) -> ! {
    eprintln!("error: {}", what);
    process::exit(status)
}

/// A fault would otherwise spin forever; report it and exit with status 7.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    eprintln!("HardFault at pc={:#010x}", frame.pc());
    process::exit(7)
}
