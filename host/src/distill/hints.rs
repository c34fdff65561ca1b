//! Hint points by layer clustering: "PURSUhInT: In Search of Informative Hint Points Based on
//! Layer Clustering for Knowledge Distillation", Keser et al., Expert Systems with Applications
//! 213 (2023).
//!
//! Instead of hand-picking which teacher layers FitNets (or AT, VID, NST) distils at, run the
//! trained teacher on a sample of training images, describe every candidate layer by its
//! spatially averaged activations (`N × C_l`), measure how similar every two layers are (linear
//! CKA, Kornblith et al. 2019), cluster the layers on the dissimilarity `1 − CKA` with k-medoids
//! (centres are real layers; initial centres evenly spaced, first to last), and use the cluster
//! centres as hint points. No official code exists; the procedure follows the paper's description
//! as re-implemented in efkirmizi/distill (`store_hints.py`, `k_means.py`).

use std::path::Path;

use burn::prelude::*;

use crate::data::Loader;
use crate::train::TeacherTaps;

/// Per-layer representations: for each candidate layer, `N × C_l` row-major (spatial means).
#[derive(Debug, Clone)]
pub struct LayerRepresentations {
    /// Samples.
    pub n: usize,
    /// `(channels, values)` per candidate layer.
    pub layers: Vec<(usize, Vec<f64>)>,
}

/// Runs `teacher` on the first `n` images `loader` yields (in dataset order) and averages each
/// candidate map over its spatial positions.
pub fn layer_representations(
    teacher: &dyn TeacherTaps,
    loader: &Loader,
    n: usize,
    device: &Device,
) -> LayerRepresentations {
    let mut layers: Vec<(usize, Vec<f64>)> = Vec::new();
    let mut seen = 0;
    for batch in loader.epoch(0, 0, device) {
        if seen >= n {
            break;
        }
        let take = batch.indices.len().min(n - seen);
        let out = teacher.taps(batch.images);
        if layers.is_empty() {
            layers = out
                .candidate_maps
                .iter()
                .map(|m| (m.dims()[1], Vec::new()))
                .collect();
        }
        for ((_, values), map) in layers.iter_mut().zip(out.candidate_maps) {
            let [b, c, _, _] = map.dims();
            let pooled = map.flatten::<3>(2, 3).mean_dim(2).reshape([b, c]);
            let rows = pooled.slice([0..take, 0..c]).into_data().convert::<f32>();
            values.extend(rows.iter::<f32>().map(f64::from));
        }
        seen += take;
    }
    LayerRepresentations { n: seen, layers }
}

/// Centres the columns of an `n × c` matrix.
fn centred(x: &[f64], n: usize, c: usize) -> Vec<f64> {
    let mut out = x.to_vec();
    for j in 0..c {
        let mean = (0..n).map(|i| x[i * c + j]).sum::<f64>() / n as f64;
        for i in 0..n {
            out[i * c + j] -= mean;
        }
    }
    out
}

/// `AᵀB` for row-major `n × ca` and `n × cb` matrices: `ca × cb`.
fn gram(a: &[f64], ca: usize, b: &[f64], cb: usize, n: usize) -> Vec<f64> {
    let mut g = vec![0.0; ca * cb];
    for i in 0..n {
        let (ra, rb) = (&a[i * ca..(i + 1) * ca], &b[i * cb..(i + 1) * cb]);
        for (p, &va) in ra.iter().enumerate() {
            for (q, &vb) in rb.iter().enumerate() {
                g[p * cb + q] += va * vb;
            }
        }
    }
    g
}

fn frobenius_sq(m: &[f64]) -> f64 {
    m.iter().map(|v| v * v).sum()
}

/// Linear CKA of two representations of the same `n` samples:
/// `‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)` on column-centred matrices; 0 when either is constant.
pub fn linear_cka(x: &[f64], cx: usize, y: &[f64], cy: usize, n: usize) -> f64 {
    let (x, y) = (centred(x, n, cx), centred(y, n, cy));
    let cross = frobenius_sq(&gram(&y, cy, &x, cx, n));
    let xx = frobenius_sq(&gram(&x, cx, &x, cx, n)).sqrt();
    let yy = frobenius_sq(&gram(&y, cy, &y, cy, n)).sqrt();
    if xx == 0.0 || yy == 0.0 {
        0.0
    } else {
        cross / (xx * yy)
    }
}

/// The layer-by-layer linear-CKA matrix, row-major `L × L`.
pub fn cka_matrix(reps: &LayerRepresentations) -> Vec<f64> {
    let l = reps.layers.len();
    let mut m = vec![1.0; l * l];
    for i in 0..l {
        for j in i + 1..l {
            let (ci, xi) = &reps.layers[i];
            let (cj, xj) = &reps.layers[j];
            let s = linear_cka(xi, *ci, xj, *cj, reps.n);
            m[i * l + j] = s;
            m[j * l + i] = s;
        }
    }
    m
}

/// k-medoids on a row-major `L × L` dissimilarity: medoids start evenly spaced from the first
/// to the last layer; each layer joins its nearest medoid (ties to the earlier one); each cluster
/// moves its medoid to the member with the least total dissimilarity to the others; repeat
/// until nothing changes. Returns the sorted medoids (`k` clamped to `1..=L`).
pub fn k_medoids(dissimilarity: &[f64], l: usize, k: usize) -> Vec<usize> {
    if l == 0 {
        return Vec::new();
    }
    let k = k.clamp(1, l);
    let mut medoids: Vec<usize> = if k == 1 {
        vec![l / 2]
    } else {
        (0..k).map(|i| i * (l - 1) / (k - 1)).collect()
    };
    for _ in 0..100 {
        let assign: Vec<usize> = (0..l)
            .map(|j| {
                (0..k)
                    .min_by(|&a, &b| {
                        dissimilarity[medoids[a] * l + j]
                            .total_cmp(&dissimilarity[medoids[b] * l + j])
                    })
                    .unwrap_or(0)
            })
            .collect();
        let next: Vec<usize> = (0..k)
            .map(|c| {
                let members: Vec<usize> = (0..l).filter(|&j| assign[j] == c).collect();
                members
                    .iter()
                    .copied()
                    .min_by(|&a, &b| {
                        let cost = |m: usize| {
                            members
                                .iter()
                                .map(|&j| dissimilarity[m * l + j])
                                .sum::<f64>()
                        };
                        cost(a).total_cmp(&cost(b))
                    })
                    .unwrap_or(medoids[c])
            })
            .collect();
        if next == medoids {
            break;
        }
        medoids = next;
    }
    medoids.sort_unstable();
    medoids.dedup();
    medoids
}

/// The hint layers for `k` hints from the CKA matrix: the medoids of `1 − CKA`.
pub fn select_hints(cka: &[f64], l: usize, k: usize) -> Vec<usize> {
    let d: Vec<f64> = cka.iter().map(|s| 1.0 - s).collect();
    k_medoids(&d, l, k)
}

/// Writes the `L × L` similarity matrix as a heat-map PNG: one square of `cell` pixels per
/// entry, dark blue (0) through yellow (1), row 0 at the top; chosen layers are framed in red
/// on the diagonal.
///
/// # Errors
/// The file cannot be written.
pub fn write_heatmap(
    path: &Path,
    m: &[f64],
    l: usize,
    chosen: &[usize],
    cell: usize,
) -> std::io::Result<()> {
    let side = l * cell;
    let mut rgb = vec![0u8; side * side * 3];
    for y in 0..side {
        for x in 0..side {
            let (i, j) = (y / cell, x / cell);
            let v = m[i * l + j].clamp(0.0, 1.0);
            // A viridis-like ramp: (68, 1, 84) → (33, 145, 140) → (253, 231, 37).
            let lerp = |a: f64, b: f64, t: f64| (a + (b - a) * t).round() as u8;
            let (r, g, b) = if v < 0.5 {
                let t = v / 0.5;
                (lerp(68., 33., t), lerp(1., 145., t), lerp(84., 140., t))
            } else {
                let t = (v - 0.5) / 0.5;
                (lerp(33., 253., t), lerp(145., 231., t), lerp(140., 37., t))
            };
            let on_frame = i == j
                && chosen.contains(&i)
                && (x % cell < 2 || x % cell >= cell - 2 || y % cell < 2 || y % cell >= cell - 2);
            let px = &mut rgb[(y * side + x) * 3..(y * side + x) * 3 + 3];
            px.copy_from_slice(&if on_frame { [220, 20, 20] } else { [r, g, b] });
        }
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, side as u32, side as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(&rgb)
        .map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cka_is_one_for_a_scaled_copy_and_rotation_invariant() {
        let n = 50;
        let x: Vec<f64> = (0..n * 3)
            .map(|i| ((i * 7919) % 101) as f64 / 13.0)
            .collect();
        let y: Vec<f64> = x.iter().map(|v| 3.0 * v + 1.0).collect();
        assert!((linear_cka(&x, 3, &y, 3, n) - 1.0).abs() < 1e-12);
        // An orthogonal mix of the columns keeps CKA at 1.
        let mut z = vec![0.0; n * 2];
        for i in 0..n {
            let (a, b) = (x[i * 3], x[i * 3 + 1]);
            z[i * 2] = 0.6 * a - 0.8 * b;
            z[i * 2 + 1] = 0.8 * a + 0.6 * b;
        }
        let xy: Vec<f64> = (0..n).flat_map(|i| [x[i * 3], x[i * 3 + 1]]).collect();
        assert!((linear_cka(&xy, 2, &z, 2, n) - 1.0).abs() < 1e-12);
        let noise: Vec<f64> = (0..n).map(|i| ((i * 48271) % 97) as f64).collect();
        assert!(linear_cka(&x, 3, &noise, 1, n) < 0.5);
    }

    #[test]
    fn k_medoids_finds_block_structure() {
        // Layers 0-2, 3-5 and 6-8 are three tight groups.
        let l = 9;
        let d: Vec<f64> = (0..l * l)
            .map(|e| {
                let (i, j) = (e / l, e % l);
                if i == j {
                    0.0
                } else if i / 3 == j / 3 {
                    0.1 + 0.01 * (i as f64 - j as f64).abs()
                } else {
                    0.9
                }
            })
            .collect();
        assert_eq!(k_medoids(&d, l, 3), vec![1, 4, 7]);
        assert_eq!(k_medoids(&d, l, 1).len(), 1);
        assert_eq!(k_medoids(&d, l, 20).len(), 9);
    }
}

/// The outcome of hint selection.
#[derive(Debug, Clone)]
pub struct HintChoice {
    /// Chosen candidate layers, shallow to deep.
    pub layers: Vec<usize>,
    /// The `L × L` linear-CKA matrix.
    pub cka: Vec<f64>,
    /// Number of candidate layers.
    pub candidates: usize,
    /// Images the representations were computed on.
    pub samples: usize,
}

/// Picks `k` hint layers of `teacher` from its representations of `n` images of `loader`.
pub fn choose_hints(
    teacher: &dyn TeacherTaps,
    loader: &Loader,
    n: usize,
    k: usize,
    device: &Device,
) -> HintChoice {
    let reps = layer_representations(teacher, loader, n, device);
    let l = reps.layers.len();
    let cka = cka_matrix(&reps);
    HintChoice {
        layers: select_hints(&cka, l, k),
        cka,
        candidates: l,
        samples: reps.n,
    }
}
