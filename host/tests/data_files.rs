//! Dataset files: the real Fashion-MNIST from Debian's `dataset-fashion-mnist`, and small
//! malformed files written to a temporary directory, each of which must fail with an error that
//! names the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use tinykd::data::idx::encode_idx_u8;
use tinykd::data::{DataError, Dataset, DatasetKind, Split};

const FMNIST: &str = "/usr/share/datasets/fashion-mnist";

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes a train split of `n` 4x4 images and `labels` into `dir`, gzipped or not.
fn write_split(dir: &Path, n_images: usize, labels: &[u8], gzip: bool) -> (PathBuf, PathBuf) {
    let images = encode_idx_u8(&[n_images, 4, 4], &vec![7; n_images * 16]);
    let labels = encode_idx_u8(&[labels.len()], labels);
    let (ip, lp) = if gzip {
        (
            dir.join("train-images-idx3-ubyte.gz"),
            dir.join("train-labels-idx1-ubyte.gz"),
        )
    } else {
        (
            dir.join("train-images-idx3-ubyte"),
            dir.join("train-labels-idx1-ubyte"),
        )
    };
    std::fs::write(&ip, if gzip { gz(&images) } else { images }).unwrap();
    std::fs::write(&lp, if gzip { gz(&labels) } else { labels }).unwrap();
    (ip, lp)
}

fn load(dir: &Path) -> Result<Dataset, DataError> {
    Dataset::load(dir, DatasetKind::FashionMnist, Split::Train)
}

/// The error's message names `file`.
fn names(e: &DataError, file: &Path) -> bool {
    e.to_string().contains(&file.display().to_string())
}

#[test]
fn real_fashion_mnist_loads_with_expected_shape_and_statistics() {
    let dir = Path::new(FMNIST);
    let train = Dataset::load(dir, DatasetKind::FashionMnist, Split::Train).unwrap();
    let test = Dataset::load(dir, DatasetKind::FashionMnist, Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!((train.rows(), train.cols(), train.classes()), (28, 28, 10));
    // Fashion-MNIST is balanced: 6,000 training images per class.
    let mut counts = [0usize; 10];
    for &l in train.labels() {
        counts[usize::from(l)] += 1;
    }
    assert_eq!(counts, [6000; 10]);
    // The normalization constants documented in DatasetKind::mean_std.
    let (mean, std) = train.pixel_mean_std();
    let (m, s) = DatasetKind::FashionMnist.mean_std();
    assert!(
        (mean - m).abs() < 5e-4 && (std - s).abs() < 5e-4,
        "{mean} {std}"
    );
}

#[test]
fn plain_and_gzip_files_load_the_same() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    write_split(a.path(), 3, &[0, 1, 9], false);
    write_split(b.path(), 3, &[0, 1, 9], true);
    let (da, db) = (load(a.path()).unwrap(), load(b.path()).unwrap());
    assert_eq!(da, db);
    assert_eq!(da.labels(), &[0, 1, 9]);
    assert_eq!(da.image(2), Some(&[7; 16][..]));
}

#[test]
fn truncated_gzip_is_a_decompress_error_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let (ip, _) = write_split(d.path(), 50, &[1; 50], true);
    let bytes = std::fs::read(&ip).unwrap();
    std::fs::write(&ip, &bytes[..bytes.len() / 2]).unwrap();
    let e = load(d.path()).unwrap_err();
    assert!(matches!(e, DataError::Decompress { .. }), "{e}");
    assert!(names(&e, &ip), "{e}");
}

#[test]
fn truncated_body_is_reported_with_the_byte_counts() {
    let d = tempfile::tempdir().unwrap();
    let (ip, _) = write_split(d.path(), 3, &[0, 1, 2], false);
    let bytes = std::fs::read(&ip).unwrap();
    std::fs::write(&ip, &bytes[..bytes.len() - 5]).unwrap();
    match load(d.path()) {
        Err(
            e @ DataError::IdxTruncated {
                expected: 48,
                found: 43,
                ..
            },
        ) => assert!(names(&e, &ip)),
        other => panic!("expected IdxTruncated, got {other:?}"),
    }
}

#[test]
fn wrong_magic_rank_and_type_are_header_errors() {
    let d = tempfile::tempdir().unwrap();
    let (ip, lp) = write_split(d.path(), 2, &[0, 1], false);
    // An image file where the label file should be: rank 3 instead of 1.
    std::fs::copy(&ip, &lp).unwrap();
    let e = load(d.path()).unwrap_err();
    assert!(
        matches!(e, DataError::IdxHeader { .. }) && names(&e, &lp),
        "{e}"
    );

    write_split(d.path(), 2, &[0, 1], false);
    std::fs::write(&ip, b"GIF89a not an idx file").unwrap();
    let e = load(d.path()).unwrap_err();
    assert!(
        matches!(e, DataError::IdxHeader { .. }) && names(&e, &ip),
        "{e}"
    );

    std::fs::write(&ip, [0u8, 0, 8]).unwrap();
    assert!(matches!(load(d.path()), Err(DataError::IdxHeader { .. })));
}

#[test]
fn trailing_bytes_are_rejected() {
    let d = tempfile::tempdir().unwrap();
    let (_, lp) = write_split(d.path(), 2, &[0, 1], false);
    let mut bytes = std::fs::read(&lp).unwrap();
    bytes.extend_from_slice(&[0, 0, 0]);
    std::fs::write(&lp, bytes).unwrap();
    let e = load(d.path()).unwrap_err();
    assert!(
        matches!(e, DataError::IdxTrailing { extra: 3, .. }) && names(&e, &lp),
        "{e}"
    );
}

#[test]
fn image_and_label_counts_must_agree() {
    let d = tempfile::tempdir().unwrap();
    let (ip, lp) = write_split(d.path(), 3, &[0, 1], false);
    match load(d.path()) {
        Err(
            e @ DataError::CountMismatch {
                n_images: 3,
                n_labels: 2,
                ..
            },
        ) => {
            assert!(names(&e, &ip) && names(&e, &lp), "{e}")
        }
        other => panic!("expected CountMismatch, got {other:?}"),
    }
}

#[test]
fn labels_must_be_class_indices() {
    let d = tempfile::tempdir().unwrap();
    let (_, lp) = write_split(d.path(), 3, &[0, 10, 2], false);
    match load(d.path()) {
        Err(
            e @ DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                ..
            },
        ) => assert!(names(&e, &lp)),
        other => panic!("expected LabelOutOfRange, got {other:?}"),
    }
}

#[test]
fn missing_files_list_the_names_tried() {
    let d = tempfile::tempdir().unwrap();
    let e = load(d.path()).unwrap_err();
    assert!(matches!(e, DataError::MissingFile { .. }), "{e}");
    assert!(e.to_string().contains("train-images-idx3-ubyte.gz"), "{e}");
}

#[test]
fn truncate_keeps_a_prefix() {
    let d = tempfile::tempdir().unwrap();
    write_split(d.path(), 5, &[0, 1, 2, 3, 4], false);
    let mut ds = load(d.path()).unwrap();
    ds.truncate(2);
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.labels(), &[0, 1]);
    ds.truncate(10);
    assert_eq!(ds.len(), 2);
}
