//! A minimal LIS3DH driver over the embedded-hal 1.0 [`I2c`] trait, behind a small
//! [`Accelerometer`] trait, for feeding `tinykd_device::Stream` on a sensor node.
//!
//! What it sets up is what the HAPT recordings (and so the trained student) use: 50 Hz output
//! data rate, X/Y/Z on, high-resolution mode (12 bit), ±2 g full scale (1 mg per digit), block
//! data update. Readings come out in **g**, the unit of HAPT's accelerometer channels, so they go
//! straight into `Stream::push`, which applies the blob's input normalisation.
//!
//! ```
//! use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
//! use tinykd_lis3dh::{Accelerometer, Lis3dh, ADDRESS_LOW};
//! let expectations = [
//!     Transaction::write_read(ADDRESS_LOW, vec![0x0F], vec![0x33]), // WHO_AM_I
//!     Transaction::write(ADDRESS_LOW, vec![0x20, 0x47]),          // CTRL_REG1: 50 Hz, XYZ
//!     Transaction::write(ADDRESS_LOW, vec![0x23, 0x88]),          // CTRL_REG4: BDU, HR, ±2 g
//!     // OUT_X_L.. with auto-increment: x = +1000 mg, y = −500 mg, z = 16 mg (left-justified).
//!     Transaction::write_read(ADDRESS_LOW, vec![0xA8], vec![0x80, 0x3E, 0xC0, 0xE0, 0x00, 0x01]),
//! ];
//! let mut i2c = Mock::new(&expectations);
//! let mut acc = Lis3dh::new(i2c.clone(), ADDRESS_LOW).unwrap();
//! assert_eq!(acc.read_g().unwrap(), [1.0, -0.5, 0.016]);
//! i2c.done();
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use embedded_hal::i2c::I2c;

/// I2C address with SDO/SA0 low.
pub const ADDRESS_LOW: u8 = 0x18;
/// I2C address with SDO/SA0 high (the default on many breakout boards).
pub const ADDRESS_HIGH: u8 = 0x19;

const WHO_AM_I: u8 = 0x0F;
const WHO_AM_I_VALUE: u8 = 0x33;
const CTRL_REG1: u8 = 0x20;
const CTRL_REG4: u8 = 0x23;
const OUT_X_L: u8 = 0x28;
/// Sub-address bit 7: auto-increment over consecutive registers.
const AUTO_INCREMENT: u8 = 0x80;
/// CTRL_REG1: ODR = 50 Hz (0100), normal/high-resolution (LPen = 0), Z, Y, X enabled.
const CTRL_REG1_50HZ_XYZ: u8 = 0x47;
/// CTRL_REG4: block data update, ±2 g (FS = 00), high resolution (HR = 1).
const CTRL_REG4_BDU_HR_2G: u8 = 0x88;
/// g per digit of a 12-bit reading at ±2 g in high-resolution mode (1 mg/digit).
const G_PER_DIGIT: f32 = 0.001;

/// A 3-axis accelerometer that reads one sample in g: what a sensor node feeds to
/// `tinykd_device::Stream::push`. Implement it for another part to plug it in.
pub trait Accelerometer {
    /// The error of a failed read.
    type Error;
    /// One sample `[x, y, z]` in g.
    fn read_g(&mut self) -> Result<[f32; 3], Self::Error>;
}

/// Why talking to the LIS3DH failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error<E> {
    /// The I2C bus reported an error.
    I2c(E),
    /// WHO_AM_I did not read 0x33: no LIS3DH at this address (the value read).
    WrongDevice(u8),
}

impl<E: core::fmt::Debug> core::fmt::Display for Error<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::I2c(e) => write!(f, "lis3dh: I2C error {e:?}"),
            Error::WrongDevice(v) => write!(f, "lis3dh: WHO_AM_I is {v:#04x}, not 0x33"),
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for Error<E> {}

/// A LIS3DH on an I2C bus, configured for 50 Hz, high resolution, ±2 g.
pub struct Lis3dh<I> {
    i2c: I,
    address: u8,
}

impl<I: I2c> Lis3dh<I> {
    /// Checks WHO_AM_I and configures the part (see the crate docs).
    pub fn new(mut i2c: I, address: u8) -> Result<Self, Error<I::Error>> {
        let mut id = [0u8];
        i2c.write_read(address, &[WHO_AM_I], &mut id)
            .map_err(Error::I2c)?;
        if id != [WHO_AM_I_VALUE] {
            return Err(Error::WrongDevice(id[0]));
        }
        i2c.write(address, &[CTRL_REG1, CTRL_REG1_50HZ_XYZ])
            .map_err(Error::I2c)?;
        i2c.write(address, &[CTRL_REG4, CTRL_REG4_BDU_HR_2G])
            .map_err(Error::I2c)?;
        Ok(Lis3dh { i2c, address })
    }

    /// The raw 12-bit readings `[x, y, z]` in digits (1 mg each), one auto-increment read of
    /// OUT_X_L..OUT_Z_H.
    pub fn read_raw(&mut self) -> Result<[i16; 3], Error<I::Error>> {
        let mut b = [0u8; 6];
        self.i2c
            .write_read(self.address, &[OUT_X_L | AUTO_INCREMENT], &mut b)
            .map_err(Error::I2c)?;
        let [x0, x1, y0, y1, z0, z1] = b;
        // Left-justified 12-bit two's complement: the arithmetic shift keeps the sign.
        Ok([
            i16::from_le_bytes([x0, x1]) >> 4,
            i16::from_le_bytes([y0, y1]) >> 4,
            i16::from_le_bytes([z0, z1]) >> 4,
        ])
    }

    /// Gives the bus back.
    pub fn release(self) -> I {
        self.i2c
    }
}

impl<I: I2c> Accelerometer for Lis3dh<I> {
    type Error = Error<I::Error>;

    fn read_g(&mut self) -> Result<[f32; 3], Self::Error> {
        Ok(self.read_raw()?.map(|d| f32::from(d) * G_PER_DIGIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

    fn setup(addr: u8) -> Vec<Transaction> {
        vec![
            Transaction::write_read(addr, vec![0x0F], vec![0x33]),
            Transaction::write(addr, vec![0x20, 0x47]),
            Transaction::write(addr, vec![0x23, 0x88]),
        ]
    }

    #[test]
    fn configures_and_reads_extremes_in_g() {
        let mut t = setup(ADDRESS_HIGH);
        // +2047 and −2048 digits (the 12-bit extremes), and 0; the low nibble is ignored.
        t.push(Transaction::write_read(
            ADDRESS_HIGH,
            vec![0xA8],
            vec![0xFF, 0x7F, 0x00, 0x80, 0x0F, 0x00],
        ));
        let mut i2c = Mock::new(&t);
        let mut acc = Lis3dh::new(i2c.clone(), ADDRESS_HIGH).unwrap();
        assert_eq!(acc.read_raw().unwrap(), [2047, -2048, 0]);
        i2c.done();
    }

    #[test]
    fn wrong_device_and_bus_errors() {
        let t = [Transaction::write_read(ADDRESS_LOW, vec![0x0F], vec![0x44])];
        let mut i2c = Mock::new(&t);
        assert_eq!(
            Lis3dh::new(i2c.clone(), ADDRESS_LOW).err(),
            Some(Error::WrongDevice(0x44))
        );
        i2c.done();
        let mut t = setup(ADDRESS_LOW);
        t.push(
            Transaction::write_read(ADDRESS_LOW, vec![0xA8], vec![0; 6])
                .with_error(ErrorKind::Other),
        );
        let mut i2c = Mock::new(&t);
        let mut acc = Lis3dh::new(i2c.clone(), ADDRESS_LOW).unwrap();
        assert_eq!(acc.read_g(), Err(Error::I2c(ErrorKind::Other)));
        i2c.done();
    }
}
