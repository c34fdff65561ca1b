//! Batching: seeded shuffling, augmentation, normalization, and conversion to NCHW tensors.
//!
//! Every random choice of an epoch (the order of the images, each crop offset, each flip) comes
//! from generators seeded by [`derive_seed`]`(seed, epoch, stream)`, never from state carried over
//! from earlier epochs. So epoch `e` is the same whether the run got there in one go or was
//! resumed from a checkpoint written after epoch `e - 1`: that is what makes resume exact.
//!
//! ```
//! use tinykd::data::{derive_seed, Augmentation};
//! // Same inputs, same seed; a different epoch or stream gives an unrelated one.
//! assert_eq!(derive_seed(7, 3, 0), derive_seed(7, 3, 0));
//! assert_ne!(derive_seed(7, 3, 0), derive_seed(7, 4, 0));
//! assert_ne!(derive_seed(7, 3, 0), derive_seed(7, 3, 1));
//! assert_eq!(Augmentation::default(), Augmentation { crop_padding: 0, hflip: false });
//! ```

use burn::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{Dataset, Samples};

/// Generator stream of the epoch's image order.
const STREAM_SHUFFLE: u64 = 1;
/// Generator stream of the epoch's augmentation choices.
const STREAM_AUGMENT: u64 = 2;

/// Mixes `seed`, `epoch` and a stream number into one well-spread 64-bit seed (SplitMix64's
/// finalizer applied to each part in turn), so nearby inputs give unrelated generators.
pub fn derive_seed(seed: u64, epoch: u64, stream: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    mix(mix(mix(seed) ^ epoch) ^ stream)
}

/// Pixel normalization `x = (p / 255 - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of the pixels scaled to `[0, 1]`.
    pub mean: f32,
    /// Standard deviation of the pixels scaled to `[0, 1]`; must be positive.
    pub std: f32,
}

/// Label-preserving random transforms applied to training batches only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Augmentation {
    /// Pad each side with this many black pixels and crop a random window of the original size
    /// (0 disables). 2 is a common choice for 28×28 images (4 for 32×32 CIFAR).
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2. Only for datasets where that keeps the label
    /// ([`super::DatasetKind::hflip_preserves_label`]).
    pub hflip: bool,
}

/// One batch, ready for a model.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Normalized images, `[batch, 1, rows, cols]`.
    pub images: Tensor<4>,
    /// Class indices, `[batch]`.
    pub targets: Tensor<1, Int>,
    /// Regression targets in `[0, 1]`, `[batch]` (`None` for a classification set).
    pub values: Option<Tensor<1>>,
    /// The dataset index of each image (what instance-level methods such as CRD key on).
    pub indices: Vec<usize>,
}

/// How a [`Loader`] cuts a dataset into batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoaderConfig {
    /// Images per batch; must be at least 1.
    pub batch_size: usize,
    /// Visit the images in a new seeded order each epoch (training) or in file order (evaluation).
    pub shuffle: bool,
    /// Drop a last batch smaller than `batch_size` (keeps BatchNorm statistics from a tiny batch
    /// out of training).
    pub drop_last: bool,
    /// Random transforms (use the default, none, for evaluation).
    pub augmentation: Augmentation,
    /// Pixel normalization.
    pub normalization: Normalization,
}

/// Cuts a [`Dataset`] into batches of tensors, one epoch at a time.
#[derive(Debug, Clone)]
pub struct Loader<'a> {
    dataset: &'a Dataset,
    config: LoaderConfig,
}

impl<'a> Loader<'a> {
    /// A loader over `dataset`. A `batch_size` of 0 is treated as 1.
    pub fn new(dataset: &'a Dataset, mut config: LoaderConfig) -> Self {
        config.batch_size = config.batch_size.max(1);
        Self { dataset, config }
    }

    /// The dataset this loader reads.
    pub fn dataset(&self) -> &'a Dataset {
        self.dataset
    }

    /// The loader's settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Number of batches one epoch yields.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Number of images one epoch yields (fewer than the dataset with `drop_last`).
    pub fn num_images(&self) -> usize {
        if self.config.drop_last {
            self.num_batches() * self.config.batch_size
        } else {
            self.dataset.len()
        }
    }

    /// The image order of epoch `epoch` under `seed`: a permutation when shuffling, else `0..n`.
    pub fn order(&self, seed: u64, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.config.shuffle {
            let mut rng = StdRng::seed_from_u64(derive_seed(seed, epoch as u64, STREAM_SHUFFLE));
            // Fisher-Yates, written out so the order depends only on the generator's outputs.
            for i in (1..order.len()).rev() {
                let j = rng.gen_range(0..=i);
                order.swap(i, j);
            }
        }
        order
    }

    /// The batches of epoch `epoch` under `seed`, created on `device`.
    pub fn epoch(&self, seed: u64, epoch: usize, device: &Device) -> EpochBatches<'a> {
        EpochBatches {
            dataset: self.dataset,
            config: self.config,
            order: self.order(seed, epoch),
            next: 0,
            batches_left: self.num_batches(),
            rng: StdRng::seed_from_u64(derive_seed(seed, epoch as u64, STREAM_AUGMENT)),
            device: device.clone(),
        }
    }
}

/// Iterator over the batches of one epoch (see [`Loader::epoch`]).
#[derive(Debug)]
pub struct EpochBatches<'a> {
    dataset: &'a Dataset,
    config: LoaderConfig,
    order: Vec<usize>,
    next: usize,
    batches_left: usize,
    rng: StdRng,
    device: Device,
}

impl Iterator for EpochBatches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.batches_left == 0 {
            return None;
        }
        self.batches_left -= 1;
        let end = (self.next + self.config.batch_size).min(self.order.len());
        let indices = self.order[self.next..end].to_vec();
        self.next = end;
        Some(make_batch(
            self.dataset,
            &indices,
            &self.config,
            &mut self.rng,
            &self.device,
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.batches_left, Some(self.batches_left))
    }
}

impl ExactSizeIterator for EpochBatches<'_> {}

/// Builds the batch of `indices`: augments (drawing from `rng` in index order), normalizes, and
/// uploads to `device`. Float samples are already normalized and are not augmented.
fn make_batch(
    dataset: &Dataset,
    indices: &[usize],
    config: &LoaderConfig,
    rng: &mut StdRng,
    device: &Device,
) -> Batch {
    let [channels, rows, cols] = dataset.shape();
    let per_sample = channels * rows * cols;
    let mut values = Vec::with_capacity(indices.len() * per_sample);
    match dataset.samples() {
        Samples::Pixels(pixels) => {
            let images = |i: usize| &pixels[i * per_sample..(i + 1) * per_sample];
            augment_pixels(images, rows, cols, indices, config, rng, &mut values);
        }
        Samples::Values(all) => {
            for &i in indices {
                values.extend_from_slice(&all[i * per_sample..(i + 1) * per_sample]);
            }
        }
    }
    let targets: Vec<i64> = indices
        .iter()
        .map(|&i| i64::from(dataset.label(i)))
        .collect();
    let b = indices.len();
    let regression = dataset.targets().map(|t| {
        let v: Vec<f32> = indices.iter().map(|&i| t.values[i]).collect();
        Tensor::from_data(TensorData::new(v, [b]), device)
    });
    Batch {
        images: Tensor::from_data(TensorData::new(values, [b, channels, rows, cols]), device),
        targets: Tensor::from_data(TensorData::new(targets, [b]), device),
        values: regression,
        indices: indices.to_vec(),
    }
}

/// Crops, flips and normalizes the grayscale images of `indices` into `out`.
fn augment_pixels<'p>(
    image: impl Fn(usize) -> &'p [u8],
    rows: usize,
    cols: usize,
    indices: &[usize],
    config: &LoaderConfig,
    rng: &mut StdRng,
    out: &mut Vec<f32>,
) {
    let Normalization { mean, std } = config.normalization;
    let scale = 1.0 / (255.0 * std);
    let offset = -mean / std;
    // The normalized value of a black padding pixel.
    let pad_value = offset;
    let aug = config.augmentation;
    for &i in indices {
        let src = image(i);
        let p = aug.crop_padding as isize;
        let (dy, dx) = if p > 0 {
            (rng.gen_range(-p..=p), rng.gen_range(-p..=p))
        } else {
            (0, 0)
        };
        let flip = aug.hflip && rng.gen_bool(0.5);
        for y in 0..rows as isize {
            let sy = y + dy;
            for x in 0..cols as isize {
                let xx = if flip { cols as isize - 1 - x } else { x };
                let sx = xx + dx;
                let v = if sy >= 0 && sy < rows as isize && sx >= 0 && sx < cols as isize {
                    f32::from(src[sy as usize * cols + sx as usize]) * scale + offset
                } else {
                    pad_value
                };
                out.push(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn tiny(n: usize) -> Dataset {
        // Image i is filled with (i % 25) * 10 except pixel (0, 0) = 255, label i % 10.
        let (rows, cols) = (4, 5);
        let mut images = Vec::new();
        for i in 0..n {
            let mut img = vec![((i % 25) * 10) as u8; rows * cols];
            img[0] = 255;
            images.extend(img);
        }
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        Dataset::from_raw(images, labels, rows, cols, 10, Path::new("mem")).unwrap()
    }

    fn cfg(batch_size: usize, shuffle: bool, drop_last: bool, aug: Augmentation) -> LoaderConfig {
        LoaderConfig {
            batch_size,
            shuffle,
            drop_last,
            augmentation: aug,
            normalization: Normalization {
                mean: 0.0,
                std: 1.0,
            },
        }
    }

    fn values(t: &Tensor<4>) -> Vec<f32> {
        t.to_data().iter::<f32>().collect()
    }

    #[test]
    fn batches_cover_the_dataset_once() {
        let ds = tiny(10);
        let dev = Device::flex();
        let loader = Loader::new(&ds, cfg(4, true, false, Augmentation::default()));
        assert_eq!(loader.num_batches(), 3);
        let batches: Vec<Batch> = loader.epoch(3, 0, &dev).collect();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].images.dims(), [2, 1, 4, 5]);
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_ne!(seen, (0..10).collect::<Vec<_>>(), "shuffled order expected");
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        // Targets follow the indices.
        let t = batches[0]
            .targets
            .to_data()
            .iter::<i64>()
            .collect::<Vec<_>>();
        let want: Vec<i64> = batches[0]
            .indices
            .iter()
            .map(|&i| (i % 10) as i64)
            .collect();
        assert_eq!(t, want);

        let dropping = Loader::new(&ds, cfg(4, false, true, Augmentation::default()));
        assert_eq!(dropping.num_batches(), 2);
        assert_eq!(dropping.num_images(), 8);
        assert_eq!(dropping.order(3, 0), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn float_samples_batch_as_they_are() {
        // Three windows of 2 channels × 3 steps; value = 100·window + 10·channel + step.
        let raw: Vec<f32> = (0..3)
            .flat_map(|i| {
                (0..2).flat_map(move |c| (0..3).map(move |t| (100 * i + 10 * c + t) as f32))
            })
            .collect();
        let names = vec!["x".to_string(), "y".to_string()];
        let ds = Dataset::from_values(raw, vec![0, 1, 0], [2, 1, 3], 2, names, Path::new("mem"))
            .unwrap();
        let dev = Device::flex();
        // Augmentation is for images: a float set ignores it.
        let aug = Augmentation {
            crop_padding: 2,
            hflip: true,
        };
        let b = Loader::new(&ds, cfg(2, false, false, aug))
            .epoch(0, 0, &dev)
            .nth(1)
            .unwrap();
        assert_eq!(b.images.dims(), [1, 2, 1, 3]);
        assert_eq!(
            values(&b.images),
            [200.0, 201.0, 202.0, 210.0, 211.0, 212.0]
        );
        let nan = Dataset::from_values(
            vec![f32::NAN; 6],
            vec![0],
            [2, 1, 3],
            2,
            vec!["x".into(), "y".into()],
            Path::new("mem"),
        );
        assert!(nan
            .unwrap_err()
            .to_string()
            .contains("sample 0 holds a NaN"));
    }

    #[test]
    fn order_depends_only_on_seed_and_epoch() {
        let ds = tiny(50);
        let loader = Loader::new(&ds, cfg(8, true, false, Augmentation::default()));
        assert_eq!(loader.order(1, 5), loader.order(1, 5));
        assert_ne!(loader.order(1, 5), loader.order(1, 6));
        assert_ne!(loader.order(1, 5), loader.order(2, 5));
    }

    #[test]
    fn normalization_is_applied() {
        let ds = tiny(2);
        let dev = Device::flex();
        let mut c = cfg(2, false, false, Augmentation::default());
        c.normalization = Normalization {
            mean: 0.5,
            std: 0.25,
        };
        let b = Loader::new(&ds, c).epoch(0, 0, &dev).next().unwrap();
        let v = values(&b.images);
        assert!((v[0] - (1.0 - 0.5) / 0.25).abs() < 1e-6); // pixel 255
        assert!((v[1] - (0.0 - 0.5) / 0.25).abs() < 1e-6); // image 0 is 0 elsewhere
        assert!((v[20 + 1] - (10.0 / 255.0 - 0.5) / 0.25).abs() < 1e-6);
    }

    #[test]
    fn augmentation_moves_pixels_and_is_reproducible() {
        let ds = tiny(64);
        let dev = Device::flex();
        let aug = Augmentation {
            crop_padding: 1,
            hflip: true,
        };
        let loader = Loader::new(&ds, cfg(64, false, false, aug));
        let a = values(&loader.epoch(9, 2, &dev).next().unwrap().images);
        let b = values(&loader.epoch(9, 2, &dev).next().unwrap().images);
        assert_eq!(a, b, "same (seed, epoch) must give the same augmentation");
        let c = values(&loader.epoch(9, 3, &dev).next().unwrap().images);
        assert_ne!(a, c);
        // Every image keeps exactly one bright pixel or loses it off the edge, and pixels only
        // take the image's own value, 255, or black padding.
        let mut moved = 0;
        for i in 0..64 {
            let img = &a[i * 20..(i + 1) * 20];
            let bright: Vec<usize> = (0..20).filter(|&k| (img[k] - 1.0).abs() < 1e-5).collect();
            assert!(bright.len() <= 1);
            if bright != [0] {
                moved += 1;
            }
            let own = ((i % 25) * 10) as f32 / 255.0;
            assert!(img
                .iter()
                .all(|&v| (v - 1.0).abs() < 1e-5 || v == 0.0 || (v - own).abs() < 1e-5));
        }
        assert!(
            moved > 32,
            "most images should be shifted or flipped, got {moved}"
        );
    }
}
