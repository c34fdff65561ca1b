//! Reshape: the same bytes under a new shape (SPEC §3). The memory plan keeps input and output
//! apart, so this is one copy.

use super::{In, Out};
use crate::error::{need, Result};

/// Runs one reshape.
pub(crate) fn reshape(x: In<'_>, y: Out<'_>) -> Result<()> {
    if x.data.len() != y.data.len() {
        return need(None);
    }
    y.data.copy_from_slice(x.data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinykd_format::Shape;

    #[test]
    fn copies_and_checks_length() {
        let mut y = [0i8; 4];
        reshape(
            In {
                data: &[1, 2, 3, 4],
                shape: Shape { h: 2, w: 2, c: 1 },
                zero_point: 0,
            },
            Out {
                data: &mut y,
                shape: Shape { h: 1, w: 1, c: 4 },
                zero_point: 0,
            },
        )
        .unwrap();
        assert_eq!(y, [1, 2, 3, 4]);
        let mut short = [0i8; 3];
        let r = reshape(
            In {
                data: &[1, 2, 3, 4],
                shape: Shape { h: 2, w: 2, c: 1 },
                zero_point: 0,
            },
            Out {
                data: &mut short,
                shape: Shape { h: 1, w: 1, c: 3 },
                zero_point: 0,
            },
        );
        assert_eq!(r, Err(crate::Error::RunInconsistent));
    }
}
