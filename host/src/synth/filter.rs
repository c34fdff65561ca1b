//! Teacher filtering and relabelling of generated samples (cGAN-KD steps 3 and 4).
//!
//! The teacher scores each fake by its cross-entropy w.r.t. the label the GAN was conditioned
//! on. The cut-off is the q-quantile of those scores on a burn-in set of the same class (q = 0.9
//! by default, the paper's `FILTER_THRESH`); samples scoring at or above it are dropped
//! (`fake_CE_loss < CE_cutoff_point` keeps, as in the official code). The kept samples then take
//! the teacher's predicted class as their label.

/// The `q`-quantile of `values` with linear interpolation between order statistics (NumPy's
/// default `np.quantile`, what the official code calls). `None` for an empty slice.
pub fn quantile(values: &[f32], q: f64) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = (pos - lo as f64) as f32;
    Some(v[lo] + (v[hi] - v[lo]) * frac)
}

/// The outcome of filtering one batch: which samples stay, and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Filtered {
    /// Indices of the kept samples, in order.
    pub kept: Vec<usize>,
    /// The label of each kept sample (the teacher's prediction when relabelling, else the
    /// conditioning label).
    pub labels: Vec<u8>,
    /// How many kept samples got a label different from their conditioning label.
    pub relabelled: usize,
}

/// Keeps the samples whose teacher cross-entropy `ce[i]` is below `cutoff` (all of them when
/// `cutoff` is `None`: filtering off) and labels them by the teacher's `predicted[i]` when
/// `relabel`, else by `conditioned[i]`.
pub fn filter_and_relabel(
    ce: &[f32],
    predicted: &[u8],
    conditioned: &[u8],
    cutoff: Option<f32>,
    relabel: bool,
) -> Filtered {
    let mut out = Filtered {
        kept: Vec::new(),
        labels: Vec::new(),
        relabelled: 0,
    };
    for (i, &c) in ce.iter().enumerate() {
        if cutoff.is_some_and(|t| c >= t) {
            continue;
        }
        let label = if relabel {
            predicted[i]
        } else {
            conditioned[i]
        };
        out.relabelled += usize::from(label != conditioned[i]);
        out.kept.push(i);
        out.labels.push(label);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_matches_numpy() {
        // np.quantile([1, 2, 3, 4, 5], 0.9) = 4.6; np.quantile([3, 1, 2], 0.5) = 2.0
        assert!((quantile(&[5.0, 1.0, 4.0, 2.0, 3.0], 0.9).unwrap() - 4.6).abs() < 1e-6);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        assert_eq!(quantile(&[], 0.9), None);
        assert_eq!(quantile(&[1.0, 9.0], 1.0), Some(9.0));
    }

    #[test]
    fn filter_drops_high_ce_and_relabels() {
        // Ten samples conditioned on class 3 with CE 0.1 … 1.0; cut-off = q0.9 = 0.91.
        let ce: Vec<f32> = (1..=10).map(|i| i as f32 / 10.0).collect();
        let cond = vec![3u8; 10];
        let pred = vec![3, 3, 5, 3, 3, 3, 3, 3, 1, 2];
        let cut = quantile(&ce, 0.9);
        assert!((cut.unwrap() - 0.91).abs() < 1e-6);
        let f = filter_and_relabel(&ce, &pred, &cond, cut, true);
        assert_eq!(f.kept, (0..9).collect::<Vec<_>>(), "only CE 1.0 is dropped");
        assert_eq!(f.labels, vec![3, 3, 5, 3, 3, 3, 3, 3, 1]);
        assert_eq!(f.relabelled, 2);
        let keep_labels = filter_and_relabel(&ce, &pred, &cond, cut, false);
        assert_eq!(
            (keep_labels.labels, keep_labels.relabelled),
            (vec![3; 9], 0)
        );
        let all = filter_and_relabel(&ce, &pred, &cond, None, true);
        assert_eq!(all.kept.len(), 10);
    }
}
