//! PNG grids of generated samples: one row per class, a 2-pixel gap between tiles.

use std::path::Path;

use super::{io_err, SynthError};

/// Gap between tiles, in pixels (drawn mid-grey so black and white tiles both stand out).
const GAP: usize = 2;

/// Converts generator outputs in `[-1, 1]` to 8-bit pixels (`(x + 1) · 127.5`, rounded,
/// clamped): the inverse of the GAN's input scaling, as the paper stores its fakes.
pub fn to_pixels(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .map(|&v| ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Writes `tiles` (`rows · cols` grayscale images of `side × side` pixels, row-major, the tiles
/// of a row consecutive) as one PNG grid of `rows` rows and `cols` columns.
///
/// # Errors
/// [`SynthError::Io`] naming `path`; [`SynthError::Sampling`] when `tiles` has the wrong length.
pub fn write_grid(
    path: &Path,
    tiles: &[u8],
    rows: usize,
    cols: usize,
    side: usize,
) -> Result<(), SynthError> {
    if tiles.len() != rows * cols * side * side {
        return Err(SynthError::Sampling(format!(
            "grid {}: {} pixels for {rows}×{cols} tiles of {side}×{side}",
            path.display(),
            tiles.len()
        )));
    }
    let width = cols * side + (cols + 1) * GAP;
    let height = rows * side + (rows + 1) * GAP;
    let mut canvas = vec![128u8; width * height];
    for r in 0..rows {
        for c in 0..cols {
            let tile = &tiles[(r * cols + c) * side * side..][..side * side];
            for y in 0..side {
                let dst = (GAP + r * (side + GAP) + y) * width + GAP + c * (side + GAP);
                canvas[dst..dst + side].copy_from_slice(&tile[y * side..(y + 1) * side]);
            }
        }
    }
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let png_err = |e: png::EncodingError| SynthError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(&canvas).map_err(png_err)?;
    writer.finish().map_err(png_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_from_tanh_range() {
        assert_eq!(
            to_pixels(&[-1.0, 0.0, 1.0, 2.0, -3.0]),
            vec![0, 128, 255, 255, 0]
        );
    }

    #[test]
    fn grid_png_has_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.png");
        // 2 rows × 3 cols of 4×4 tiles, tile k filled with k.
        let tiles: Vec<u8> = (0..6u8).flat_map(|k| [k; 16]).collect();
        write_grid(&path, &tiles, 2, 3, 4).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3 * 4 + 4 * 2, 2 * 4 + 3 * 2));
        let w = info.width as usize;
        assert_eq!(buf[0], 128, "gap");
        assert_eq!(buf[2 * w + 2], 0, "tile (0,0)");
        assert_eq!(buf[(2 + 4 + 2) * w + 2 + 2 * (4 + 2)], 5, "tile (1,2)");
        assert!(write_grid(&path, &tiles, 3, 3, 4).is_err());
    }
}
