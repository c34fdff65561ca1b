//! Streaming inference for sensor nodes: push one multichannel sample at a time, get a prediction
//! whenever a window is complete.
//!
//! A time-series model's input is a window of `T` samples × `C` channels, stored time-major as the
//! HWC tensor `[1, T, C]` (exactly the order samples arrive; `[T, 1, C]` works the same). A
//! [`Stream`] keeps the last `T` samples in a ring buffer the caller owns (no allocator, no
//! copy of the window), and once the window is full runs the model every `hop` samples
//! (default `T / 2`, i.e. 50 % overlap, as HAPT's 2.56 s windows are cut):
//!
//! - [`Stream::push`] takes raw physical values (`f32`, e.g. g from an accelerometer),
//!   normalises each channel with the blob's `(mean, std)` (format 1.3, SPEC §5.2; none: the
//!   values are used as they are), and quantizes with the input tensor's scale and zero point
//!   (`Quant::quantize`: round half to even, saturating; NaN → the zero point);
//! - [`Stream::push_i8`] takes samples that are already quantized.
//!
//! Both return `Ok(Some(Prediction))` when the model ran on this sample, `Ok(None)` otherwise.
//! Window length and channel count come from the blob; a sample of the wrong length is
//! [`Error::StreamChannelCount`], and nothing panics, whatever the values.
//!
//! ```
//! use tinykd_format::{ModelBuilder, Quant, Shape};
//! use tinykd_device::{Model, Stream};
//! // A window of 4 samples × 2 channels, normalised with (mean, std) = (1, 0.5) and (0, 2),
//! // then global average pooling: the "class" is the channel with the larger mean.
//! let q = Quant { scale: 0.1, zero_point: 0 };
//! let mut b = ModelBuilder::new("imu", Shape { h: 1, w: 4, c: 2 }, q);
//! let x = b.input();
//! b.global_avg_pool(x).unwrap();
//! b.input_normalization(&[(1.0, 0.5), (0.0, 2.0)]).unwrap();
//! let blob = b.finish().unwrap();
//!
//! let model = Model::from_bytes(&blob).unwrap();
//! let mut ring = [0i8; 8]; // one window: model.input_len()
//! let mut arena = [0u8; 64]; // at least model.arena_size()
//! let mut stream = Stream::new(model, &mut ring, &mut arena).unwrap();
//! assert_eq!((stream.window(), stream.channels(), stream.hop()), (4, 2, 2));
//!
//! // (x − mean) / std / 0.1: [1.5, 2.0] → [10, 10], [1.0, −2.0] → [0, −10], …
//! assert!(stream.push(&[1.5, 2.0]).unwrap().is_none());
//! assert!(stream.push(&[1.0, -2.0]).unwrap().is_none());
//! assert!(stream.push(&[2.0, 0.0]).unwrap().is_none());
//! let p = stream.push(&[0.5, 8.0]).unwrap().unwrap(); // the first full window
//! assert_eq!((p.output, p.class, p.window, p.sample), (&[5i8, 10][..], 1, 0, 3));
//! assert!(stream.push(&[1.0, 0.0]).unwrap().is_none()); // hop 2: one more sample
//! let p = stream.push(&[2.5, -4.0]).unwrap().unwrap(); // samples 2..=5
//! assert_eq!((p.output, p.class, p.window, p.sample), (&[10i8, 5][..], 0, 1, 5));
//! assert_eq!(
//!     stream.push(&[1.0]).unwrap_err(),
//!     tinykd_device::Error::StreamChannelCount
//! );
//! ```
//!
//! Cost per sample: `C` float normalisations and quantizations and a `C`-byte write; per window,
//! one rotation of the ring (`T·C` bytes, so the window is contiguous in time order) and one
//! [`Model::run`]. RAM: the ring (`T·C` bytes), the arena, and this struct.

use crate::{argmax, Error, Model, Result};

/// Streaming inference over a ring buffer of one window (see the [module docs](self)).
pub struct Stream<'m, 'b> {
    model: Model<'m>,
    ring: &'b mut [i8],
    arena: &'b mut [u8],
    channels: usize,
    window: usize,
    hop: usize,
    /// Sample slot the next push writes (`0..window`).
    head: usize,
    /// Samples still to push before the next run.
    until_run: usize,
    /// Samples pushed since creation or [`Stream::reset`].
    pushed: u64,
    /// Windows run since creation or [`Stream::reset`].
    runs: u32,
}

/// One run of the model on a complete window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prediction<'a> {
    /// The predicted class: [`argmax`] of the output (the first on ties).
    pub class: usize,
    /// The model output (int8, [`Model::output_quant`]), living in the stream's arena until the
    /// next push.
    pub output: &'a [i8],
    /// Index of this window (0 for the first full window).
    pub window: u32,
    /// Index of the window's last sample among all samples pushed.
    pub sample: u64,
}

impl<'m, 'b> Stream<'m, 'b> {
    /// A stream over `model` with the default hop of half a window (at least 1).
    ///
    /// `ring` must hold exactly one window ([`Model::input_len`] values) and `arena` at least
    /// [`Model::arena_size`] bytes (4-aligned for the fast kernels, as for [`Model::run`]);
    /// else [`Error::StreamBufferSize`].
    pub fn new(model: Model<'m>, ring: &'b mut [i8], arena: &'b mut [u8]) -> Result<Self> {
        let channels = usize::from(model.input_shape().c);
        let window = model.input_len().checked_div(channels).unwrap_or(0);
        Self::with_hop(model, ring, arena, (window / 2).max(1))
    }

    /// As [`Stream::new`] with the model run every `hop` samples once the window is full
    /// (`hop` = window length: no overlap; larger: windows with gaps). `hop` 0 is
    /// [`Error::StreamBadHop`].
    ///
    /// ```
    /// # use tinykd_format::{ModelBuilder, Quant, Shape};
    /// # use tinykd_device::{Error, Model, Stream};
    /// # let mut b = ModelBuilder::new("s", Shape { h: 1, w: 3, c: 1 }, Quant { scale: 1.0, zero_point: 0 });
    /// # let x = b.input();
    /// # b.global_avg_pool(x).unwrap();
    /// # let blob = b.finish().unwrap();
    /// let model = Model::from_bytes(&blob).unwrap(); // 3 samples × 1 channel → average
    /// let (mut ring, mut arena) = ([0i8; 3], [0u8; 16]);
    /// let mut s = Stream::with_hop(model, &mut ring, &mut arena, 1).unwrap();
    /// let outs: Vec<Option<i8>> = [3i8, 6, 9, 12]
    ///     .iter()
    ///     .map(|v| s.push_i8(&[*v]).unwrap().map(|p| p.output[0]))
    ///     .collect();
    /// assert_eq!(outs, [None, None, Some(6), Some(9)]);
    /// let (mut ring, mut arena) = ([0i8; 3], [0u8; 16]);
    /// assert_eq!(Stream::with_hop(model, &mut ring, &mut arena, 0).err(), Some(Error::StreamBadHop));
    /// let (mut ring, mut arena) = ([0i8; 4], [0u8; 16]);
    /// assert_eq!(Stream::new(model, &mut ring, &mut arena).err(), Some(Error::StreamBufferSize));
    /// ```
    pub fn with_hop(
        model: Model<'m>,
        ring: &'b mut [i8],
        arena: &'b mut [u8],
        hop: usize,
    ) -> Result<Self> {
        let channels = usize::from(model.input_shape().c);
        let window = model.input_len().checked_div(channels).unwrap_or(0);
        if ring.len() != model.input_len() || arena.len() < model.arena_size() || window == 0 {
            return Err(Error::StreamBufferSize);
        }
        if hop == 0 {
            return Err(Error::StreamBadHop);
        }
        ring.fill(model.input_quant().zero_point);
        Ok(Stream {
            model,
            ring,
            arena,
            channels,
            window,
            hop,
            head: 0,
            until_run: window,
            pushed: 0,
            runs: 0,
        })
    }

    /// Values per sample (the input tensor's channels).
    pub const fn channels(&self) -> usize {
        self.channels
    }

    /// Samples per window (the input tensor's `h·w`).
    pub const fn window(&self) -> usize {
        self.window
    }

    /// Samples between two runs once the window is full.
    pub const fn hop(&self) -> usize {
        self.hop
    }

    /// Samples pushed since creation or the last [`Stream::reset`].
    pub const fn pushed(&self) -> u64 {
        self.pushed
    }

    /// The model.
    pub const fn model(&self) -> &Model<'m> {
        &self.model
    }

    /// Forgets every sample: the next run needs a full window again (e.g. after a sensor gap).
    pub fn reset(&mut self) {
        self.head = 0;
        self.until_run = self.window;
        self.pushed = 0;
        self.runs = 0;
    }

    /// Pushes one sample of raw physical values (one per channel): normalised per channel with
    /// the blob's `(mean, std)` if it has one, quantized with the input's scale and zero point.
    /// Returns the prediction if the model ran on this sample.
    pub fn push(&mut self, sample: &[f32]) -> Result<Option<Prediction<'_>>> {
        if sample.len() != self.channels {
            return Err(Error::StreamChannelCount);
        }
        let quant = self.model.input_quant();
        let norm = self.model.input_normalization();
        let slot = self.slot()?;
        for (c, (dst, &x)) in slot.iter_mut().zip(sample).enumerate() {
            let v = match norm {
                Some(n) => n.normalize(c, x).unwrap_or(x),
                None => x,
            };
            *dst = quant.quantize(v);
        }
        self.advance()
    }

    /// Pushes one already-quantized sample (one int8 value per channel, the input tensor's
    /// quantization). Returns the prediction if the model ran on this sample.
    pub fn push_i8(&mut self, sample: &[i8]) -> Result<Option<Prediction<'_>>> {
        if sample.len() != self.channels {
            return Err(Error::StreamChannelCount);
        }
        self.slot()?.copy_from_slice(sample);
        self.advance()
    }

    /// The ring slot of the next sample.
    fn slot(&mut self) -> Result<&mut [i8]> {
        let start = self.head * self.channels;
        self.ring
            .get_mut(start..start + self.channels)
            .ok_or(Error::RunInconsistent)
    }

    /// Counts the sample just written and runs the model when it is due.
    fn advance(&mut self) -> Result<Option<Prediction<'_>>> {
        self.head += 1;
        if self.head == self.window {
            self.head = 0;
        }
        self.pushed += 1;
        self.until_run -= 1;
        if self.until_run > 0 {
            return Ok(None);
        }
        self.until_run = self.hop;
        // Oldest sample first: after the rotation the ring is the window in time order, and
        // the next push overwrites the oldest sample at slot 0.
        self.ring.rotate_left(self.head * self.channels);
        self.head = 0;
        let window = self.runs;
        self.runs = self.runs.wrapping_add(1);
        let output = self.model.run(self.ring, self.arena)?;
        Ok(Some(Prediction {
            class: argmax(output),
            output,
            window,
            sample: self.pushed - 1,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;
    use tinykd_format::{Activation, Conv2dSpec, ModelBuilder, Quant, Shape};

    fn conv1d_model(t: u16, c: u16, norm: bool) -> Vec<u8> {
        let q = Quant {
            scale: 0.05,
            zero_point: -3,
        };
        let mut b = ModelBuilder::new("s", Shape { h: 1, w: t, c }, q);
        let x = b.input();
        let n = usize::from(c) * 3 * 4;
        let y = b
            .conv2d(
                x,
                Conv2dSpec {
                    out_channels: 4,
                    kernel: [1, 3],
                    stride: [1, 1],
                    padding: [0, 1, 0, 1],
                    groups: 1,
                    weights: (0..n).map(|i| ((i * 37) % 255) as i8).collect(),
                    weight_scales: std::vec![0.01; 4],
                    bias: std::vec![5, -5, 100, -100],
                    output: Quant {
                        scale: 0.1,
                        zero_point: 0,
                    },
                    activation: Activation::None,
                },
            )
            .unwrap();
        b.global_avg_pool(y).unwrap();
        if norm {
            let pairs: Vec<(f32, f32)> = (0..c).map(|i| (i as f32, 0.5 + i as f32)).collect();
            b.input_normalization(&pairs).unwrap();
        }
        b.finish().unwrap()
    }

    /// Every prediction equals `Model::run` on the window cut from the whole stream, for hops
    /// below, equal to and above the window length, after a reset too.
    #[test]
    fn predictions_match_model_run_on_each_window() {
        for norm in [false, true] {
            let blob = conv1d_model(10, 3, norm);
            let model = Model::from_bytes(&blob).unwrap();
            let values: Vec<f32> = (0..3 * 57)
                .map(|i| ((i * 7919) % 101) as f32 / 10.0 - 5.0)
                .collect();
            let quantized: Vec<i8> = values
                .chunks(3)
                .flat_map(|s| {
                    s.iter().enumerate().map(|(c, &x)| {
                        let v = match model.input_normalization() {
                            Some(n) => n.normalize(c, x).unwrap(),
                            None => x,
                        };
                        model.input_quant().quantize(v)
                    })
                })
                .collect();
            for hop in [1, 3, 5, 10, 13] {
                let mut ring = std::vec![0i8; model.input_len()];
                let mut arena = std::vec![0u8; model.arena_size()];
                let mut arena2 = std::vec![0u8; model.arena_size()];
                let mut s = Stream::with_hop(model, &mut ring, &mut arena, hop).unwrap();
                for round in 0..2 {
                    let mut windows = 0;
                    for (i, sample) in values.chunks(3).enumerate() {
                        let got = if i % 2 == 0 {
                            s.push(sample)
                                .unwrap()
                                .map(|p| (p.class, p.output.to_vec(), p))
                        } else {
                            let q = &quantized[i * 3..i * 3 + 3];
                            s.push_i8(q)
                                .unwrap()
                                .map(|p| (p.class, p.output.to_vec(), p))
                        };
                        let due = i + 1 >= 10 && (i + 1 - 10) % hop == 0;
                        assert_eq!(got.is_some(), due, "hop {hop} sample {i}");
                        if let Some((class, out, p)) = got {
                            let want = model
                                .run(&quantized[(i + 1 - 10) * 3..(i + 1) * 3], &mut arena2)
                                .unwrap();
                            assert_eq!(out, want, "hop {hop} sample {i} round {round}");
                            assert_eq!(class, argmax(want));
                            assert_eq!((p.window, p.sample), (windows, i as u64));
                            windows += 1;
                        }
                    }
                    s.reset();
                }
            }
        }
    }

    #[test]
    fn hostile_samples_never_panic() {
        let blob = conv1d_model(4, 2, true);
        let model = Model::from_bytes(&blob).unwrap();
        let mut ring = [0i8; 8];
        let mut arena = std::vec![0u8; model.arena_size()];
        let mut s = Stream::new(model, &mut ring, &mut arena).unwrap();
        assert_eq!(s.push(&[]).unwrap_err(), Error::StreamChannelCount);
        assert_eq!(s.push(&[1.0; 3]).unwrap_err(), Error::StreamChannelCount);
        assert_eq!(s.push_i8(&[1; 1]).unwrap_err(), Error::StreamChannelCount);
        let mut ran = 0;
        for v in [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            -0.0,
            1e-40,
        ] {
            for _ in 0..3 {
                ran += usize::from(s.push(&[v, -v]).unwrap().is_some());
            }
        }
        assert_eq!(s.pushed(), 21);
        assert_eq!(ran, 9); // first at sample 4, then every 2
        let mut small = std::vec![0u8; model.arena_size() - 1];
        let mut ring = [0i8; 8];
        assert_eq!(
            Stream::new(model, &mut ring, &mut small).err(),
            Some(Error::StreamBufferSize)
        );
    }
}
