//! A panic handler for the board firmware: logs the panic and exits through semihosting with
//! status 101, which ends a `probe-rs run` (or a QEMU run) with a failure.

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    #[cfg(feature = "defmt")]
    defmt::error!("panic: {}", defmt::Display2Format(info));
    #[cfg(not(feature = "defmt"))]
    semihosting::eprintln!("panic: {}", info);
    semihosting::process::exit(101)
}
