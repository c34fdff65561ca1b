//! Streaming inference from a LIS3DH accelerometer on the nRF52840-DK (issue 7).
//!
//! A LIS3DH breakout on the DK's Arduino-header I2C pins (TWIM0: SDA P0.26, SCL P0.27, 400 kHz)
//! is read at 50 Hz through `tinykd-lis3dh` (embedded-hal 1.0 `I2c`, which embassy-nrf's
//! blocking `Twim` implements); every `[x, y, z]` sample, in g, goes into a
//! `tinykd_device::Stream` over the embedded model, which normalises it with the blob's input
//! normalisation, quantizes it into a ring buffer of one window, and runs the model every half
//! window. Each prediction is logged over defmt/RTT with the cycles of the push that ran it
//! (DWT: quantize, rotate the ring, run the model).
//!
//! Pacing: polling on the RTC1 clock (embassy-time, 32.768 kHz), one read every 20 ms on a
//! fixed schedule. The LIS3DH samples at its own 50 Hz (block data update on), so a read gets
//! the latest sample; the two clocks drift apart by their crystals' tolerance, so about once
//! every few thousand reads a sample is read twice or skipped. The part's data-ready interrupt
//! (INT1) would remove that; the driver does not configure it.
//!
//! The model is chosen at build time (`build.rs`): `TINYKD_STREAM_BLOB=path/to/student.tkd`, a
//! trained HAPT student (3 accelerometer channels in g), else the seeded conv1d stream test
//! model of the QEMU replay firmware (random weights: its classes mean nothing). The static
//! ring and arena are sized from the blob. See docs/boards.md for the wiring and the run line.
#![no_std]
#![no_main]

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use embassy_nrf::config::{Config, HfclkSource};
use embassy_nrf::{bind_interrupts, peripherals, twim};
use embassy_time::{block_for, Duration, Instant};
use tinykd_board::{Aligned, Stack};
use tinykd_device::{Model, Stream};
use tinykd_lis3dh::{Accelerometer, Lis3dh, ADDRESS_LOW};

mod stream {
    include!(concat!(env!("OUT_DIR"), "/stream.rs"));
}

/// The embedded model, 8-byte aligned in flash (weights are borrowed in place).
static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/stream.tkd")));

/// The LIS3DH's 7-bit address: 0x18 with SDO/SA0 tied to GND (Adafruit's breakout as shipped),
/// 0x19 (`tinykd_lis3dh::ADDRESS_HIGH`) with SDO/SA0 tied to VCC (SparkFun's breakout as
/// shipped). Check your breakout's schematic; a wrong address ends in an `AddressNack`.
const LIS3DH_ADDRESS: u8 = ADDRESS_LOW;

/// One sample every 20 ms: the 50 Hz of the LIS3DH's output data rate and of HAPT.
const SAMPLE_PERIOD: Duration = Duration::from_millis(20);

/// Channels the accelerometer gives: the model's input must take exactly these.
const CHANNELS: usize = 3;

/// HFCLK from the 32 MHz crystal: the core runs at 64 MHz.
const CORE_HZ: u32 = 64_000_000;

/// Exit status through semihosting (`probe-rs run` returns it): the model cannot stream
/// accelerometer samples.
const EXIT_MODEL: i32 = 2;
/// Exit status: no LIS3DH answered.
const EXIT_SENSOR: i32 = 3;

bind_interrupts!(struct Irqs {
    TWISPI0 => twim::InterruptHandler<peripherals::TWISPI0>;
});

#[entry]
fn main() -> ! {
    // cortex-m-rt turns `static mut` items of the entry function into `&'static mut`.
    static mut ARENA: Aligned<[u8; stream::STREAM_ARENA]> = Aligned([0; stream::STREAM_ARENA]);
    static mut RING: [i8; stream::STREAM_WINDOW_LEN] = [0; stream::STREAM_WINDOW_LEN];
    // The TWIM's DMA reads RAM only: the driver's register writes are constants in flash,
    // copied here first (at most 2 bytes each).
    static mut TX_RAM: [u8; 8] = [0; 8];

    let stack = Stack::from_linker();
    stack.paint();
    let mut config = Config::default();
    config.hfclk_source = HfclkSource::ExternalXtal;
    let p = embassy_nrf::init(config);
    let mut core = cortex_m::Peripherals::take().expect("taken once");
    core.DCB.enable_trace();
    core.DWT.enable_cycle_counter();

    let model = match Model::from_bytes(&BLOB.0) {
        Ok(model) => model,
        Err(e) => halt(EXIT_MODEL, || {
            defmt::error!("the embedded blob is rejected: {}", e)
        }),
    };
    let name = model.desc().name();
    let mut stream = match Stream::new(model, RING, &mut ARENA.0) {
        Ok(stream) => stream,
        Err(e) => halt(EXIT_MODEL, || {
            defmt::error!("{}: no stream over it: {}", name, e)
        }),
    };
    if stream.channels() != CHANNELS {
        let channels = stream.channels();
        halt(EXIT_MODEL, || {
            defmt::error!(
                "{}: the model takes {} channels per sample, the accelerometer gives {} (x, y, z); build with TINYKD_STREAM_BLOB=<a 3-channel student>",
                name,
                channels,
                CHANNELS
            )
        });
    }

    let mut i2c_config = twim::Config::default();
    i2c_config.frequency = twim::Frequency::K400;
    // The DK has no pull-ups on P0.26/P0.27; most breakouts do, and the internal ones
    // (about 13 kΩ) cover a bare part at this short distance.
    i2c_config.sda_pullup = true;
    i2c_config.scl_pullup = true;
    let i2c = twim::Twim::new(p.TWISPI0, Irqs, p.P0_26, p.P0_27, i2c_config, TX_RAM);
    let mut acc = match Lis3dh::new(i2c, LIS3DH_ADDRESS) {
        Ok(acc) => acc,
        Err(e) => halt(EXIT_SENSOR, || {
            defmt::error!(
                "no LIS3DH at {=u8:#x} on SDA P0.26 / SCL P0.27: {}",
                LIS3DH_ADDRESS,
                e
            )
        }),
    };

    defmt::info!(
        "tinykd streaming on nRF52840-DK: model {}, window {} samples x {} channels, hop {}, ring {} B, arena {} B, LIS3DH at {=u8:#x}, 50 Hz",
        name,
        stream.window(),
        stream.channels(),
        stream.hop(),
        stream::STREAM_WINDOW_LEN,
        stream::STREAM_ARENA,
        LIS3DH_ADDRESS
    );

    let mut next = Instant::now();
    let mut late = 0u32;
    loop {
        // A fixed schedule (not "20 ms after the last read"), so the rate does not drift with
        // the time an inference takes; a sample more than a period late restarts it.
        next += SAMPLE_PERIOD;
        let now = Instant::now();
        if next > now {
            block_for(next - now);
        } else {
            late = late.wrapping_add(1);
            next = now;
        }
        let g = match acc.read_g() {
            Ok(g) => g,
            Err(e) => {
                // A missing sample breaks the window: start it again.
                defmt::warn!("LIS3DH read failed ({}); the window starts again", e);
                stream.reset();
                continue;
            }
        };
        let start = DWT::cycle_count();
        let pushed = stream.push(&g);
        let cycles = DWT::cycle_count().wrapping_sub(start);
        match pushed {
            Ok(Some(p)) => defmt::info!(
                "window {} (sample {}): class {} out {} | {} cycles ({} us at {} MHz) | last [{}, {}, {}] g | late reads {} | stack {} B",
                p.window,
                p.sample,
                p.class,
                p.output,
                cycles,
                cycles / (CORE_HZ / 1_000_000),
                CORE_HZ / 1_000_000,
                g[0],
                g[1],
                g[2],
                late,
                stack.high_water()
            ),
            Ok(None) => {}
            Err(e) => halt(EXIT_MODEL, || defmt::error!("{}: the run failed: {}", name, e)),
        }
    }
}

/// Logs why, then stops: exits through semihosting with `status`, which ends `probe-rs run`
/// (without a debugger the core stops there).
fn halt(status: i32, log: impl FnOnce()) -> ! {
    log();
    semihosting::process::exit(status)
}
