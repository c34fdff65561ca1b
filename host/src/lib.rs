//! # tinykd
//!
//! Distill large neural networks into tiny students and export them as `tinykd-format` blobs that
//! `tinykd-device` runs on microcontrollers, with the same predictions on the host and on the board.
//!
//! A folder per concern: [`data`] (datasets and batching), [`models`] (teachers and students, each
//! returning its feature taps), [`distill`] (one file per method), [`quant`] (BatchNorm folding,
//! fake quantization, calibration), [`train`] (the training loop, optimizers, checkpoints),
//! [`export`] (student → blob), [`eval`], [`deploy`] (running blobs on the host and in QEMU) and
//! [`cli`].
#![warn(missing_docs)]

pub mod backend;
pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod deploy;
pub mod distill;
pub mod eval;
pub mod export;
pub mod factorize;
pub mod models;
pub mod quant;
pub mod quickstart;
pub mod synth;
pub mod takd;
pub mod train;
