//! The rotation-angle regression task on Fashion-MNIST ([`DatasetKind::FashionMnistRotation`]):
//! a real continuous target derived from the data, as cGAN-KD's regression experiments need
//! (the paper's steering-angle and face-age sets cannot be downloaded here).
//!
//! Image `i` of a split is rotated counter-clockwise by `θ_i ∈ [−45°, 45°]` about its centre,
//! with bilinear interpolation and the background (0) outside the source. `θ_i` is drawn from a
//! generator seeded by the split and the index alone, so a truncated split keeps its angles and
//! every run sees the same task. The target is `(θ + 45) / 90 ∈ [0, 1]`; errors are reported in
//! degrees ([`Targets::scale`](super::Targets) = 90). The clothing classes are dropped: the
//! label of every sample is 0 (one output).
//!
//! ±45° keeps the task well posed: most garments have an up direction, and a quarter turn of a
//! symmetric bag is not confused with no turn.
//!
//! [`DatasetKind::FashionMnistRotation`]: super::DatasetKind::FashionMnistRotation

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{derive_seed, DataError, Dataset, Split};

/// The largest rotation, in degrees, either way.
pub const MAX_ANGLE: f32 = 45.0;

/// Seed of the angles (fixed: the task is part of the dataset, not of a run).
const ANGLE_SEED: u64 = 0x0_7a7e;

/// The angle of image `index` of `split`, in degrees.
pub fn angle_of(split: Split, index: usize) -> f32 {
    let stream = match split {
        Split::Train => 1,
        Split::Test => 2,
    };
    let mut rng = StdRng::seed_from_u64(derive_seed(ANGLE_SEED, index as u64, stream));
    rng.gen_range(-MAX_ANGLE..=MAX_ANGLE)
}

/// Degrees to the normalized target in `[0, 1]`.
pub fn normalize(degrees: f32) -> f32 {
    ((degrees + MAX_ANGLE) / (2.0 * MAX_ANGLE)).clamp(0.0, 1.0)
}

/// `image` (`rows × cols`, row-major) rotated counter-clockwise by `degrees` about its centre
/// (bilinear; 0 outside the source; rounded to the nearest integer).
pub fn rotate(image: &[u8], rows: usize, cols: usize, degrees: f32) -> Vec<u8> {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cy, cx) = ((rows as f32 - 1.0) / 2.0, (cols as f32 - 1.0) / 2.0);
    let pixel = |y: isize, x: isize| -> f32 {
        if y < 0 || x < 0 || y >= rows as isize || x >= cols as isize {
            0.0
        } else {
            f32::from(image[y as usize * cols + x as usize])
        }
    };
    let mut out = Vec::with_capacity(rows * cols);
    for y in 0..rows {
        for x in 0..cols {
            // Inverse map: the source point that lands on (y, x). With y pointing down, a
            // counter-clockwise turn on screen by θ maps source (dx, dy) to
            // (dx·cos + dy·sin, −dx·sin + dy·cos); its inverse is the turn by −θ.
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let sx = dx * cos - dy * sin + cx;
            let sy = dx * sin + dy * cos + cy;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as isize, y0 as isize);
            let top = pixel(y0, x0) * (1.0 - fx) + pixel(y0, x0 + 1) * fx;
            let bottom = pixel(y0 + 1, x0) * (1.0 - fx) + pixel(y0 + 1, x0 + 1) * fx;
            out.push((top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8);
        }
    }
    out
}

/// The rotation task built from a Fashion-MNIST split `clothing` (loaded from `origin`).
///
/// # Errors
/// [`DataError::IdxHeader`] when `clothing` holds no images (a float dataset).
pub fn rotated(clothing: &Dataset, split: Split, origin: &Path) -> Result<Dataset, DataError> {
    let (rows, cols) = (clothing.rows(), clothing.cols());
    let mut pixels = Vec::with_capacity(clothing.len() * rows * cols);
    let mut targets = Vec::with_capacity(clothing.len());
    for i in 0..clothing.len() {
        let image = clothing.image(i).ok_or_else(|| DataError::IdxHeader {
            path: origin.to_path_buf(),
            reason: "the rotation task needs grayscale images".into(),
        })?;
        let angle = angle_of(split, i);
        pixels.extend(rotate(image, rows, cols, angle));
        targets.push(normalize(angle));
    }
    let labels = vec![0u8; clothing.len()];
    Dataset::from_raw(pixels, labels, rows, cols, 1, origin)?.with_targets(
        targets,
        2.0 * MAX_ANGLE,
        origin,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_rotation_is_the_identity() {
        let image: Vec<u8> = (0..35).map(|v| (v * 7 % 256) as u8).collect();
        assert_eq!(rotate(&image, 5, 7, 0.0), image);
    }

    #[test]
    fn quarter_turn_moves_pixels_counter_clockwise() {
        // 3×3, one bright pixel right of the centre; a counter-clockwise quarter turn on screen
        // (y down) moves it above the centre.
        let mut image = vec![0u8; 9];
        image[5] = 200; // (y 1, x 2)
        let out = rotate(&image, 3, 3, 90.0);
        assert_eq!(out[1], 200, "{out:?}"); // (y 0, x 1)
        assert_eq!(out.iter().map(|&v| u32::from(v)).sum::<u32>(), 200);
    }

    #[test]
    fn angles_are_fixed_by_split_and_index_and_cover_the_range() {
        assert_eq!(angle_of(Split::Train, 7), angle_of(Split::Train, 7));
        assert_ne!(angle_of(Split::Train, 7), angle_of(Split::Test, 7));
        let a: Vec<f32> = (0..2000).map(|i| angle_of(Split::Train, i)).collect();
        assert!(a.iter().all(|v| (-45.0..=45.0).contains(v)));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 2.0, "{mean}");
        assert!(a.iter().any(|&v| v < -40.0) && a.iter().any(|&v| v > 40.0));
        assert_eq!(normalize(-45.0), 0.0);
        assert_eq!(normalize(45.0), 1.0);
        assert!((normalize(0.0) - 0.5).abs() < 1e-7);
    }
}
