//! Which feature maps a method compares, and the shapes it builds its auxiliary modules from.
//!
//! Methods name maps by their index in [`Output::feature_maps`] (shallow to deep: the student's
//! conv outputs, the teacher's stage outputs). Negative indices count from the end, as Python's
//! `feat[-2]` does. Every index is checked against the models before training, so a tap that does
//! not exist is a configuration error that lists the taps that do.

use serde::{Deserialize, Serialize};

use crate::models::Output;

/// The shape of every tap of one model, measured on a dummy batch before training.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapShapes {
    /// Number of classes (logit width).
    pub classes: usize,
    /// Width of the penultimate embedding.
    pub embedding: usize,
    /// `[channels, height, width]` of each feature map, shallow to deep.
    pub maps: Vec<[usize; 3]>,
}

impl TapShapes {
    /// The shapes of `out`'s taps.
    pub fn of(out: &Output) -> Self {
        Self {
            classes: out.logits.dims()[1],
            embedding: out.embedding.dims()[1],
            maps: out
                .feature_maps
                .iter()
                .map(|m| {
                    let [_, c, h, w] = m.dims();
                    [c, h, w]
                })
                .collect(),
        }
    }

    /// Resolves a (possibly negative) map index.
    ///
    /// # Errors
    /// The index is out of range; the message lists the maps there are.
    pub fn map(&self, index: i64, side: &str) -> Result<usize, String> {
        let n = self.maps.len() as i64;
        let resolved = if index < 0 { n + index } else { index };
        if (0..n).contains(&resolved) {
            Ok(resolved as usize)
        } else {
            Err(format!(
                "the {side} has no feature map {index}; it has {n}: {}",
                self.describe()
            ))
        }
    }

    /// `0: 16×28×28, 1: 32×14×14, …` for error messages and `tinykd hints`.
    pub fn describe(&self) -> String {
        self.maps
            .iter()
            .enumerate()
            .map(|(i, [c, h, w])| format!("{i}: {c}×{h}×{w}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Student/teacher feature-map pairs, as written in a config: `[[student, teacher], …]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MapPairs(pub Vec<[i64; 2]>);

impl MapPairs {
    /// One pair.
    pub fn single(student: i64, teacher: i64) -> Self {
        Self(vec![[student, teacher]])
    }

    /// Resolves every pair against both models; the default when `pairs` is `None` is every
    /// positional pair `(i, i)` over the deeper-aligned common depth (RepDistiller's `feat[1:-1]`
    /// on models with the same number of stages).
    ///
    /// # Errors
    /// An index is out of range, or the list is empty.
    pub fn resolve(
        pairs: Option<&MapPairs>,
        student: &TapShapes,
        teacher: &TapShapes,
    ) -> Result<Vec<(usize, usize)>, String> {
        let resolved: Vec<(usize, usize)> = match pairs {
            Some(p) => {
                p.0.iter()
                    .map(|&[s, t]| Ok((student.map(s, "student")?, teacher.map(t, "teacher")?)))
                    .collect::<Result<_, String>>()?
            }
            None => {
                let (ns, nt) = (student.maps.len(), teacher.maps.len());
                let n = ns.min(nt);
                (0..n).map(|i| (ns - n + i, nt - n + i)).collect()
            }
        };
        if resolved.is_empty() {
            return Err(format!(
                "no feature-map pairs to compare (student maps: {}; teacher maps: {})",
                student.describe(),
                teacher.describe()
            ));
        }
        Ok(resolved)
    }
}
